//! Demo microservices for `edgeflow dev`: inventory, payments and shipping on one loopback port,
//! so the `order` workflow runs on a fresh clone, and so fault runs (`bench/chaos`) can count
//! every side effect at its source. Not for production.
//!
//! Routes (each answers JSON, and honours `Idempotency-Key` by returning the first successful
//! answer again without doing anything):
//! - `POST /inventory/reservations/{order_id}`, `DELETE /inventory/reservations/{order_id}`
//! - `POST /payments/charges/{order_id}`, `POST /payments/refunds/{order_id}`
//! - `POST /shipping/notices/{order_id}`
//! - `GET /_stats`: every call counted per service, route and key, and each order's net effect.
//!
//! The compensations (release, refund) are keyed on the order, so they are safe to call whenever
//! the caller does not know whether the forward call happened: they undo an effect at most once
//! and otherwise answer 200 with `nothing_to_release` / `nothing_to_refund`. Once an order's
//! reservation was released (or its payment refunded), a late reservation (or charge) for it is
//! refused with 409 instead of taking stock (or money) nobody will give back.
//!
//! `dev.demo_failure` makes the services misbehave, to try retries and compensation:
//! - `flaky:<service>`: the service's forward calls answer 503 twice per order, then succeed;
//! - `down:<service>`: its forward calls answer 422 (a permanent failure) every time;
//! - `slow:<service>:<secs>`: its forward calls do their work at once and answer `secs` later,
//!   like a payment provider that charges and then is slow to say so (repeats of a key too);
//! - `errors:<percent>`: every call to every service, compensations included, answers 503 with
//!   that probability, each call on its own, before doing anything.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

/// How `dev.demo_failure` asks the services to fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    None,
    Flaky(String),
    Down(String),
    /// The service's forward calls take effect, then answer after this long.
    Slow(String, Duration),
    /// Every call answers 503 with this probability, in percent.
    Errors(u8),
}

impl Failure {
    pub const SERVICES: [&'static str; 3] = ["inventory", "payments", "shipping"];
    /// The longest `slow` delay: beyond it a run would look hung rather than slow.
    const MAX_SLOW_SECS: f64 = 3600.0;
}

/// Parsed once, when the settings load (`dev.demo_failure`); the error says what is wrong.
impl FromStr for Failure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let services = Self::SERVICES.join(", ");
        let forms = "`none`, `flaky:<service>`, `down:<service>`, `slow:<service>:<secs>` or \
                     `errors:<percent>`";
        let service = |name: &str| {
            if Self::SERVICES.contains(&name) {
                Ok(name.to_string())
            } else {
                Err(format!(
                    "`{s}`: `{name}` is not a demo service (services: {services})"
                ))
            }
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(Failure::None),
            ["flaky", name] => Ok(Failure::Flaky(service(name)?)),
            ["down", name] => Ok(Failure::Down(service(name)?)),
            ["slow", name, secs] => {
                let name = service(name)?;
                match secs.parse::<f64>() {
                    Ok(v) if v > 0.0 && v <= Self::MAX_SLOW_SECS => {
                        Ok(Failure::Slow(name, Duration::from_secs_f64(v)))
                    }
                    _ => Err(format!(
                        "`{s}`: the delay `{secs}` is not a number of seconds above 0 and at \
                         most {}",
                        Self::MAX_SLOW_SECS
                    )),
                }
            }
            ["errors", percent] => match percent.parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Failure::Errors(p)),
                _ => Err(format!(
                    "`{s}`: the share `{percent}` is not a whole percent from 0 to 100"
                )),
            },
            ["slow", ..] => Err(format!(
                "`{s}` is not `slow:<service>:<secs>` (services: {services})"
            )),
            _ => Err(format!("`{s}` is not {forms} (services: {services})")),
        }
    }
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Reserve,
    Release,
    Charge,
    Refund,
    Notify,
}

impl Action {
    fn service(self) -> &'static str {
        match self {
            Action::Reserve | Action::Release => "inventory",
            Action::Charge | Action::Refund => "payments",
            Action::Notify => "shipping",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Action::Reserve => "POST /inventory/reservations/{order_id}",
            Action::Release => "DELETE /inventory/reservations/{order_id}",
            Action::Charge => "POST /payments/charges/{order_id}",
            Action::Refund => "POST /payments/refunds/{order_id}",
            Action::Notify => "POST /shipping/notices/{order_id}",
        }
    }

    fn is_compensation(self) -> bool {
        matches!(self, Action::Release | Action::Refund)
    }
}

/// One order's side effects, as the services saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderEffects {
    pub reserved: u32,
    pub released: u32,
    pub charged: u32,
    pub refunded: u32,
    pub notified: u32,
    /// Reservations and charges refused because the order was already released or refunded.
    pub refused_after_compensation: u32,
    /// A release came (whether or not it had anything to undo): the caller gave up on the
    /// reservation, so a late one must not take stock.
    #[serde(skip)]
    reservations_closed: bool,
    /// The same for a refund and late charges.
    #[serde(skip)]
    charges_closed: bool,
}

/// Calls to one route, or with one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub calls: u32,
    /// The call did its work (a compensation with nothing to undo counts here too).
    pub executed: u32,
    /// A repeated key: the first answer was returned again, nothing was done.
    pub replayed: u32,
    /// Answered with an error (injected, or refused), nothing was done.
    pub failed: u32,
}

#[derive(Debug, Clone, Serialize)]
struct KeyStats {
    route: &'static str,
    order_id: String,
    #[serde(flatten)]
    counts: CallCounts,
}

#[derive(Default)]
struct Books {
    /// Calls per (service, order), for `flaky` and the `attempt` in answers.
    calls: HashMap<(&'static str, String), u32>,
    /// The first successful answer per Idempotency-Key, and what it was for.
    answers: HashMap<String, (Action, String, Value)>,
    routes: BTreeMap<&'static str, CallCounts>,
    keys: BTreeMap<String, KeyStats>,
    without_key: u32,
    orders: BTreeMap<String, OrderEffects>,
}

/// What to answer, and how long to wait first.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    delay: Option<Duration>,
}

#[derive(Clone)]
struct Demo {
    failure: Failure,
    books: Arc<Mutex<Books>>,
    random: Arc<ring::rand::SystemRandom>,
}

pub fn router(failure: Failure) -> axum::Router {
    let state = Demo::new(failure);
    axum::Router::new()
        .route(
            "/inventory/reservations/{order_id}",
            post(|s, h, p| handle(s, h, p, Action::Reserve))
                .delete(|s, h, p| handle(s, h, p, Action::Release)),
        )
        .route(
            "/payments/charges/{order_id}",
            post(|s, h, p| handle(s, h, p, Action::Charge)),
        )
        .route(
            "/payments/refunds/{order_id}",
            post(|s, h, p| handle(s, h, p, Action::Refund)),
        )
        .route(
            "/shipping/notices/{order_id}",
            post(|s, h, p| handle(s, h, p, Action::Notify)),
        )
        .route(
            "/_stats",
            get(|State(demo): State<Demo>| async move { axum::Json(demo.stats()) }),
        )
        .with_state(state)
}

async fn handle(
    State(demo): State<Demo>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    action: Action,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = demo.answer(action, &order_id, key.as_deref());
    if let Some(delay) = answer.delay {
        // The work is done; only the answer is late. A caller that gives up meanwhile drops
        // this future, which changes nothing.
        tokio::time::sleep(delay).await;
    }
    (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(answer.body),
    )
        .into_response()
}

impl Demo {
    fn new(failure: Failure) -> Self {
        Self {
            failure,
            books: Default::default(),
            random: Arc::new(ring::rand::SystemRandom::new()),
        }
    }

    /// True with probability `percent` / 100.
    fn roll(&self, percent: u8) -> bool {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 4];
        if self.random.fill(&mut bytes).is_err() {
            return false;
        }
        u32::from_le_bytes(bytes) % 10_000 < u32::from(percent) * 100
    }

    /// Decides and books one call.
    fn answer(&self, action: Action, order_id: &str, key: Option<&str>) -> Answer {
        let service = action.service();
        let forward = !action.is_compensation();
        let delay = match &self.failure {
            Failure::Slow(s, d) if s == service && forward => Some(*d),
            _ => None,
        };
        let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let books = &mut *books;
        let attempt = {
            let n = books
                .calls
                .entry((service, order_id.to_string()))
                .or_default();
            *n += 1;
            *n
        };
        let route = books.routes.entry(action.route()).or_default();
        route.calls += 1;
        let mut key_stats = match key {
            Some(k) => {
                let stats = books.keys.entry(k.to_string()).or_insert(KeyStats {
                    route: action.route(),
                    order_id: order_id.to_string(),
                    counts: CallCounts::default(),
                });
                stats.counts.calls += 1;
                Some(&mut stats.counts)
            }
            None => {
                books.without_key += 1;
                None
            }
        };
        let mut book = |outcome: Outcome| {
            for c in [Some(&mut *route), key_stats.as_deref_mut()]
                .into_iter()
                .flatten()
            {
                match outcome {
                    Outcome::Executed => c.executed += 1,
                    Outcome::Replayed => c.replayed += 1,
                    Outcome::Failed => c.failed += 1,
                }
            }
        };
        let error = |status: u16, message: String| Answer {
            status,
            body: json!({ "error": message }),
            delay: None,
        };

        if let Failure::Errors(percent) = self.failure
            && self.roll(percent)
        {
            book(Outcome::Failed);
            return error(503, "injected failure, try again".to_string());
        }
        if let Some((first_action, first_order, body)) = key.and_then(|k| books.answers.get(k)) {
            if (*first_action, first_order.as_str()) != (action, order_id) {
                book(Outcome::Failed);
                return error(
                    422,
                    format!(
                        "Idempotency-Key `{}` was first used for {} of order {first_order}",
                        key.unwrap_or_default(),
                        first_action.route()
                    ),
                );
            }
            book(Outcome::Replayed);
            return Answer {
                status: 200,
                body: body.clone(),
                delay,
            };
        }
        match &self.failure {
            Failure::Flaky(s) if s == service && forward && attempt <= 2 => {
                book(Outcome::Failed);
                return error(503, "try again".to_string());
            }
            Failure::Down(s) if s == service && forward => {
                book(Outcome::Failed);
                return error(422, format!("{service} refused order {order_id}"));
            }
            _ => {}
        }

        let effects = books.orders.entry(order_id.to_string()).or_default();
        let outcome = match action {
            Action::Reserve if effects.reservations_closed => None,
            Action::Charge if effects.charges_closed => None,
            Action::Reserve => {
                effects.reserved += 1;
                Some("reserved")
            }
            Action::Charge => {
                effects.charged += 1;
                Some("charged")
            }
            Action::Notify => {
                effects.notified += 1;
                Some("notified")
            }
            Action::Release => {
                effects.reservations_closed = true;
                if effects.reserved > effects.released {
                    effects.released += 1;
                    Some("released")
                } else {
                    Some("nothing_to_release")
                }
            }
            Action::Refund => {
                effects.charges_closed = true;
                if effects.charged > effects.refunded {
                    effects.refunded += 1;
                    Some("refunded")
                } else {
                    Some("nothing_to_refund")
                }
            }
        };
        let Some(outcome) = outcome else {
            effects.refused_after_compensation += 1;
            book(Outcome::Failed);
            let compensation = if action == Action::Reserve {
                "a release"
            } else {
                "a refund"
            };
            return error(
                409,
                format!(
                    "order {order_id} was compensated ({compensation} came first): refusing the \
                     late {}",
                    action.route()
                ),
            );
        };
        book(Outcome::Executed);
        let body = json!({
            "service": service, "order_id": order_id, "outcome": outcome, "attempt": attempt,
        });
        if let Some(k) = key {
            books
                .answers
                .insert(k.to_string(), (action, order_id.to_string(), body.clone()));
        }
        Answer {
            status: 200,
            body,
            delay,
        }
    }

    fn stats(&self) -> Value {
        let books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let mut totals = CallCounts::default();
        for c in books.routes.values() {
            totals.calls += c.calls;
            totals.executed += c.executed;
            totals.replayed += c.replayed;
            totals.failed += c.failed;
        }
        json!({
            "failure": format!("{:?}", self.failure),
            "totals": totals,
            "calls_without_key": books.without_key,
            "routes": books.routes,
            "keys": books.keys,
            "orders": books.orders,
        })
    }
}

enum Outcome {
    Executed,
    Replayed,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_modes_parse_and_bad_ones_say_why() {
        assert_eq!(Failure::from_str("none"), Ok(Failure::None));
        assert_eq!(
            Failure::from_str("flaky:payments"),
            Ok(Failure::Flaky("payments".into()))
        );
        assert_eq!(
            Failure::from_str("down:shipping"),
            Ok(Failure::Down("shipping".into()))
        );
        assert_eq!(
            Failure::from_str("slow:payments:20"),
            Ok(Failure::Slow("payments".into(), Duration::from_secs(20)))
        );
        assert_eq!(
            Failure::from_str("slow:inventory:0.25"),
            Ok(Failure::Slow(
                "inventory".into(),
                Duration::from_millis(250)
            ))
        );
        assert_eq!(Failure::from_str("errors:30"), Ok(Failure::Errors(30)));
        assert_eq!(Failure::from_str("errors:0"), Ok(Failure::Errors(0)));
        assert_eq!(Failure::from_str("errors:100"), Ok(Failure::Errors(100)));

        let says = |input: &str, words: &[&str]| {
            let e = Failure::from_str(input).unwrap_err();
            for w in words {
                assert!(e.contains(w), "{input}: {e}");
            }
        };
        says(
            "down:billing",
            &[
                "`billing` is not a demo service",
                "inventory, payments, shipping",
            ],
        );
        says("slow:billing:5", &["`billing` is not a demo service"]);
        says(
            "sometimes",
            &["`sometimes` is not `none`", "`errors:<percent>`"],
        );
        says("flaky", &["`flaky` is not `none`"]);
        says("slow:payments", &["is not `slow:<service>:<secs>`"]);
        says(
            "slow:payments:0",
            &["the delay `0` is not a number of seconds"],
        );
        says("slow:payments:-3", &["the delay `-3`"]);
        says("slow:payments:soon", &["the delay `soon`"]);
        says("slow:payments:NaN", &["the delay `NaN`"]);
        says("slow:payments:7200", &["at most 3600"]);
        says(
            "errors:101",
            &["the share `101` is not a whole percent from 0 to 100"],
        );
        says("errors:30%", &["the share `30%`"]);
        says("errors:-1", &["the share `-1`"]);
        says("errors", &["`errors` is not `none`"]);
    }

    fn outcome(a: &Answer) -> (u16, &str) {
        (
            a.status,
            a.body["outcome"]
                .as_str()
                .or(a.body["error"].as_str())
                .unwrap_or_default(),
        )
    }

    fn effects(demo: &Demo, order: &str) -> OrderEffects {
        demo.books.lock().unwrap().orders[order].clone()
    }

    #[test]
    fn a_repeated_key_replays_the_first_answer_and_counts_it() {
        let demo = Demo::new(Failure::None);
        let first = demo.answer(Action::Charge, "o-1", Some("k1"));
        assert_eq!(outcome(&first), (200, "charged"));
        let again = demo.answer(Action::Charge, "o-1", Some("k1"));
        assert_eq!(again, first, "the first answer, word for word");
        assert_eq!(effects(&demo, "o-1").charged, 1);
        // A new key is a new charge, as with a real provider: that is a duplicate to catch.
        demo.answer(Action::Charge, "o-1", Some("k2"));
        assert_eq!(effects(&demo, "o-1").charged, 2);
        // A key reused for another request is refused, and does nothing.
        let reused = demo.answer(Action::Refund, "o-1", Some("k1"));
        assert_eq!(reused.status, 422, "{reused:?}");
        assert_eq!(effects(&demo, "o-1").refunded, 0);

        let stats = demo.stats();
        let k1 = &stats["keys"]["k1"];
        assert_eq!(k1["route"], "POST /payments/charges/{order_id}");
        assert_eq!(
            (
                k1["calls"].as_u64(),
                k1["executed"].as_u64(),
                k1["replayed"].as_u64(),
                k1["failed"].as_u64()
            ),
            (Some(3), Some(1), Some(1), Some(1))
        );
        let charges = &stats["routes"]["POST /payments/charges/{order_id}"];
        assert_eq!(charges["calls"], 3);
        assert_eq!(stats["totals"]["calls"], 4);
        assert_eq!(stats["orders"]["o-1"]["charged"], 2);
    }

    #[test]
    fn refund_and_release_undo_at_most_once_and_are_harmless_when_nothing_happened() {
        let demo = Demo::new(Failure::None);
        // Never charged, never reserved: 200, and nothing done.
        assert_eq!(
            outcome(&demo.answer(Action::Refund, "o-1", Some("r1"))),
            (200, "nothing_to_refund")
        );
        assert_eq!(
            outcome(&demo.answer(Action::Release, "o-1", Some("l1"))),
            (200, "nothing_to_release")
        );
        assert_eq!(
            effects(&demo, "o-1"),
            OrderEffects {
                reservations_closed: true,
                charges_closed: true,
                ..Default::default()
            }
        );
        // A charge that arrives after its order was compensated is refused, not taken.
        let late = demo.answer(Action::Charge, "o-1", Some("c1"));
        assert_eq!(late.status, 409, "{late:?}");
        let late = demo.answer(Action::Reserve, "o-1", Some("v1"));
        assert_eq!(late.status, 409, "{late:?}");
        assert_eq!(effects(&demo, "o-1").charged, 0);
        assert_eq!(effects(&demo, "o-1").reserved, 0);
        assert_eq!(effects(&demo, "o-1").refused_after_compensation, 2);

        // Charged and reserved: the first refund and release undo, later ones (other keys) do not.
        demo.answer(Action::Charge, "o-2", Some("c2"));
        demo.answer(Action::Reserve, "o-2", Some("v2"));
        assert_eq!(
            outcome(&demo.answer(Action::Refund, "o-2", Some("r2"))),
            (200, "refunded")
        );
        assert_eq!(
            outcome(&demo.answer(Action::Refund, "o-2", Some("r2"))),
            (200, "refunded"),
            "the same key replays"
        );
        assert_eq!(
            outcome(&demo.answer(Action::Refund, "o-2", Some("r3"))),
            (200, "nothing_to_refund")
        );
        assert_eq!(
            outcome(&demo.answer(Action::Release, "o-2", None)),
            (200, "released")
        );
        assert_eq!(
            outcome(&demo.answer(Action::Release, "o-2", None)),
            (200, "nothing_to_release")
        );
        let o2 = effects(&demo, "o-2");
        assert_eq!(
            (o2.charged, o2.refunded, o2.reserved, o2.released),
            (1, 1, 1, 1)
        );
        assert_eq!(demo.stats()["calls_without_key"], 2);
    }

    #[test]
    fn flaky_and_down_hit_the_forward_path_only() {
        let demo = Demo::new(Failure::Flaky("payments".into()));
        // The same key on every attempt, as the worker sends it.
        assert_eq!(demo.answer(Action::Charge, "o-1", Some("k")).status, 503);
        assert_eq!(demo.answer(Action::Charge, "o-1", Some("k")).status, 503);
        assert_eq!(
            outcome(&demo.answer(Action::Charge, "o-1", Some("k"))),
            (200, "charged")
        );
        assert_eq!(demo.answer(Action::Reserve, "o-1", Some("v")).status, 200);

        let demo = Demo::new(Failure::Down("payments".into()));
        assert_eq!(demo.answer(Action::Charge, "o-1", Some("k")).status, 422);
        assert_eq!(demo.answer(Action::Refund, "o-1", Some("r")).status, 200);
        assert_eq!(effects(&demo, "o-1").charged, 0);
    }

    #[test]
    fn slow_does_the_work_first_then_answers_late_and_compensations_answer_at_once() {
        let demo = Demo::new(Failure::Slow("payments".into(), Duration::from_secs(20)));
        let charge = demo.answer(Action::Charge, "o-1", Some("k"));
        assert_eq!(outcome(&charge), (200, "charged"));
        assert_eq!(charge.delay, Some(Duration::from_secs(20)));
        assert_eq!(effects(&demo, "o-1").charged, 1, "charged before answering");
        let retry = demo.answer(Action::Charge, "o-1", Some("k"));
        assert_eq!(
            retry.delay,
            Some(Duration::from_secs(20)),
            "a slow service is slow to replay too"
        );
        assert_eq!(effects(&demo, "o-1").charged, 1);
        let refund = demo.answer(Action::Refund, "o-1", Some("r"));
        assert_eq!((outcome(&refund), refund.delay), ((200, "refunded"), None));
        assert_eq!(
            demo.answer(Action::Reserve, "o-1", Some("v")).delay,
            None,
            "other services are quick"
        );
    }

    #[test]
    fn errors_fail_each_call_on_its_own_compensations_included_and_do_nothing() {
        let demo = Demo::new(Failure::Errors(30));
        let n = 2000;
        let mut failed = 0;
        for i in 0..n {
            let order = format!("o-{i}");
            for action in [Action::Charge, Action::Refund] {
                let a = demo.answer(action, &order, Some(&format!("{order}-{action:?}")));
                if a.status == 503 {
                    failed += 1;
                }
            }
        }
        // 4000 calls at 30 %: 1200 expected, sd ~29; a 5-sd band.
        assert!(
            (1055..=1345).contains(&failed),
            "{failed} of {} failed",
            2 * n
        );
        let stats = demo.stats();
        assert_eq!(stats["totals"]["failed"], failed);
        let refunds = &stats["routes"]["POST /payments/refunds/{order_id}"];
        assert!(
            refunds["failed"].as_u64().unwrap() > 0,
            "compensations fail too: {refunds}"
        );
        // A failed call did nothing: every order's net payment is 0 or 1 charge, never more.
        for (order, e) in demo.books.lock().unwrap().orders.iter() {
            assert!(e.charged <= 1 && e.refunded <= e.charged, "{order}: {e:?}");
        }

        let never = Demo::new(Failure::Errors(0));
        let always = Demo::new(Failure::Errors(100));
        for i in 0..200 {
            assert_eq!(
                never.answer(Action::Notify, &format!("o-{i}"), None).status,
                200
            );
            assert_eq!(
                always
                    .answer(Action::Notify, &format!("o-{i}"), None)
                    .status,
                503
            );
        }
    }
}
