//! The one place that decides whether a failed activity should be retried.
//!
//! Every family describes what went wrong as a [`Failure`] (what happened, not what to do), and
//! [`Failure::retry`] decides: retryable failures go back to Temporal's retry policy (with a
//! next-retry delay when the other side asked for one via `Retry-After`); non-retryable ones
//! fail the activity for good, because a retry would meet the same answer. The mapping from
//! library errors (reqwest, sqlx, lettre) to `Failure` also lives here, so the whole policy can
//! be read, and is tested, in one file.
//!
//! | what happened | retry? |
//! |---|---|
//! | HTTP 429 or 503 | yes, after `Retry-After` when given |
//! | HTTP 408, other 5xx | yes |
//! | other HTTP 4xx, a 3xx that was not followed | no |
//! | timeout, refused or reset connection | yes |
//! | response larger than the cap | no |
//! | invalid input, unknown service/statement/template/endpoint name, path escape | no |
//! | CR/LF/NUL in a header value, unparseable email address | no |
//! | template error (e.g. a missing variable) | no |
//! | SQL constraint violation, rejected statement or parameter | no |
//! | lost DB connection, pool timeout | yes |
//! | serialization failure, deadlock, database busy | yes |
//! | SMTP 4xx reply / 5xx reply | yes / no |
//! | webhook endpoint answered anything but 2xx | yes (the receiver may recover) |
//! | email API idempotency key still in flight | yes |
//! | credentials temporarily unavailable (token file unreadable) | yes |
//! | edge activity: the edge refused the request (401, 404), failed (5xx) or gave no answer | yes (a rotation or deploy-order slip heals) |
//! | edge activity: 400, the deadline not in the future by the edge's clock | yes (skew or a slow request; the next attempt has a fresh deadline) |
//! | edge activity: 413, the input over the edge's body cap | no (`InvalidInput`: the same input always is) |
//! | edge activity: the handler threw `ActivityError` / anything else | as it said / yes |
//! | edge activity: input or output breaks its schema | no |
//! | edge activity: start-to-close timeout above `edge_activities.max_attempt_secs` | no |
//! | anything unexpected | yes (bounded by the workflow's retry policy) |
//!
//! How an attempt *ended*, as the worker reports it (metrics, logs, the shutdown drain), is read
//! from what the activity returned to the SDK, by [`Outcome::of`]: so the label on `/metrics`
//! always agrees with the retryability decided here, for every activity, whichever family.

use std::time::{Duration, SystemTime};

use temporalio_common::ActivityError;
use temporalio_common::error::ApplicationFailure;

use crate::untrusted::{INVALID_INPUT, InputError};

/// The Temporal application-failure type of an edge activity whose output broke its schema;
/// its details are shaped like [`INVALID_INPUT`]'s (`errors`, each with `path` and `message`).
pub const INVALID_OUTPUT: &str = "InvalidOutput";

/// The longest `Retry-After` honoured; a server asking for more gets this, so a typo on its side
/// cannot park a workflow for a year.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How many bytes of an error response body are kept in the failure.
pub const EXCERPT_BYTES: usize = 512;

/// What went wrong in an activity, described by what happened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The input is malformed or breaks a rule (empty step, too many recipients, bad JSON shape):
    /// each problem with the path of its field (`$` when the whole input is at fault).
    #[error("invalid input: {0}")]
    InvalidInput(InputError),
    /// The input names a service, statement, template or endpoint that is not configured.
    #[error("unknown {kind} `{name}`")]
    UnknownName {
        /// `service`, `statement`, `template` or `endpoint`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },
    /// A header value (HTTP or email) contains CR, LF or NUL.
    #[error("{field} contains CR, LF or NUL; refusing it rather than stripping it")]
    HeaderInjection {
        /// Which header or input field.
        field: String,
    },
    /// An email address that does not parse as RFC 5322.
    #[error("invalid email address {address:?}: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// Why the parser refused it.
        reason: String,
    },
    /// A request path that would leave the service's base URL.
    #[error("path rejected: {0}")]
    PathEscape(String),
    /// The other side answered with a non-success HTTP status.
    #[error("HTTP {status} from {target}{}", excerpt_suffix(.excerpt))]
    HttpStatus {
        /// The status code.
        status: u16,
        /// Who answered (service name, token endpoint, email API).
        target: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The start of the response body, at most [`EXCERPT_BYTES`].
        excerpt: String,
    },
    /// A webhook endpoint did not answer 2xx.
    #[error("webhook endpoint `{endpoint}` answered HTTP {status}")]
    WebhookRejected {
        /// The endpoint name.
        endpoint: String,
        /// The status code.
        status: u16,
        /// The endpoint's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The response body exceeded the configured cap.
    #[error("response from {target} is larger than {limit_bytes} bytes")]
    ResponseTooLarge {
        /// Who answered.
        target: String,
        /// The configured cap.
        limit_bytes: u64,
    },
    /// No answer in time (HTTP, SQL statement timeout, SMTP).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection could not be made or broke mid-way.
    #[error("connection failed: {0}")]
    Connection(String),
    /// Credentials could not be obtained right now (e.g. a token file being rotated).
    #[error("credentials unavailable: {0}")]
    Credentials(String),
    /// A template failed to render (missing variable, bad filter argument).
    #[error("template `{template}` failed to render: {message}")]
    Template {
        /// Template name.
        template: String,
        /// The engine's message.
        message: String,
    },
    /// The database refused a write because it breaks a constraint.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The database rejected the statement or its parameters (type mismatch, bad value).
    #[error("database rejected the statement: {0}")]
    DbRejected(String),
    /// The database could not be reached or the pool had no free connection in time.
    #[error("database unavailable: {0}")]
    DbUnavailable(String),
    /// The transaction lost a race (serialization failure, deadlock, database busy).
    #[error("transaction conflict: {0}")]
    DbConflict(String),
    /// An SMTP server refused the message.
    #[error("SMTP server replied {code}: {message}")]
    SmtpRejected {
        /// The reply code, e.g. 451 or 550.
        code: u16,
        /// The reply text.
        message: String,
    },
    /// The email API is still processing a request with this idempotency key.
    #[error("an earlier attempt with the same idempotency key is still in flight")]
    IdempotencyInFlight,
    /// An edge activity's handler answered an output that breaks the output schema.
    #[error("invalid output: {0}")]
    InvalidOutput(InputError),
    /// An edge activity was given a longer attempt than the edge may take: refused, never cut.
    #[error(
        "the attempt may take {timeout_secs} s (its start-to-close timeout), more than \
         edge_activities.max_attempt_secs = {max_secs} s allows; schedule it with a shorter one"
    )]
    AttemptTooLong {
        /// The attempt's own timeout, from its deadline and start.
        timeout_secs: u64,
        /// The setting.
        max_secs: u64,
    },
    /// The edge did not run the activity's handler or gave no answer a handler gives: a refused
    /// token (401), an undeclared name (404), a failure of its own (5xx), anything else.
    #[error("the edge answered HTTP {status} ({reason}){}", excerpt_suffix(.excerpt))]
    EdgeUnavailable {
        /// Why, as the `reason` label of `edgeflow_edge_activity_failures_total`.
        reason: &'static str,
        /// The status code.
        status: u16,
        /// The start of the response body, at most [`EXCERPT_BYTES`].
        excerpt: String,
    },
    /// An edge activity's handler failed: its error's type, message and retryability.
    #[error("{message}")]
    EdgeActivityFailed {
        /// The handler's error type (`ActivityError`'s type name, or `Error`).
        type_name: String,
        /// Its message.
        message: String,
        /// Whether the handler said not to retry.
        non_retryable: bool,
    },
    /// Temporal cancelled the activity (or the worker is shutting down).
    #[error("cancelled")]
    Cancelled,
    /// Anything not foreseen above.
    #[error("{0}")]
    Internal(String),
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

/// Whether, and when, to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Do not retry: the same request would fail the same way.
    No,
    /// Retry, after `after` when the other side asked for it, else per the retry policy.
    Yes {
        /// The next retry delay.
        after: Option<Duration>,
    },
    /// Not a failure to retry: the activity was cancelled.
    Cancelled,
}

impl Failure {
    /// An input refused for a reason that names no one field (`$`).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Failure::InvalidInput(InputError::at("$", message))
    }

    /// The policy: see the module table.
    pub fn retry(&self) -> Retry {
        use Failure::*;
        let yes = Retry::Yes { after: None };
        match self {
            InvalidInput(_)
            | UnknownName { .. }
            | HeaderInjection { .. }
            | BadAddress { .. }
            | PathEscape(_)
            | ResponseTooLarge { .. }
            | Template { .. }
            | Constraint(_)
            | DbRejected(_)
            | InvalidOutput(_)
            | AttemptTooLong { .. } => Retry::No,
            EdgeActivityFailed { non_retryable, .. } => {
                if *non_retryable {
                    Retry::No
                } else {
                    yes
                }
            }
            HttpStatus {
                status,
                retry_after,
                ..
            } => match status {
                429 | 503 => Retry::Yes {
                    after: *retry_after,
                },
                408 | 500..=599 => yes,
                _ => Retry::No,
            },
            WebhookRejected { retry_after, .. } => Retry::Yes {
                after: *retry_after,
            },
            SmtpRejected { code, .. } => {
                if (400..500).contains(code) {
                    yes
                } else {
                    Retry::No
                }
            }
            Timeout(_)
            | Connection(_)
            | Credentials(_)
            | DbUnavailable(_)
            | DbConflict(_)
            | IdempotencyInFlight
            | Internal(_)
            | EdgeUnavailable { .. } => yes,
            Cancelled => Retry::Cancelled,
        }
    }

    /// The Temporal application-failure type, which workflows (in any SDK) can match on.
    pub fn type_name(&self) -> &'static str {
        use Failure::*;
        match self {
            InvalidInput(_) => INVALID_INPUT,
            UnknownName { .. } => "UnknownName",
            HeaderInjection { .. } => "HeaderInjection",
            BadAddress { .. } => "BadAddress",
            PathEscape(_) => "PathEscape",
            HttpStatus { .. } => "HttpStatus",
            WebhookRejected { .. } => "WebhookRejected",
            ResponseTooLarge { .. } => "ResponseTooLarge",
            Timeout(_) => "Timeout",
            Connection(_) => "Connection",
            Credentials(_) => "Credentials",
            Template { .. } => "Template",
            Constraint(_) => "Constraint",
            DbRejected(_) => "DbRejected",
            DbUnavailable(_) => "DbUnavailable",
            DbConflict(_) => "DbConflict",
            SmtpRejected { .. } => "SmtpRejected",
            IdempotencyInFlight => "IdempotencyInFlight",
            InvalidOutput(_) => INVALID_OUTPUT,
            AttemptTooLong { .. } => "AttemptTooLong",
            EdgeUnavailable { .. } => "EdgeUnavailable",
            // The handler's own type, which only [`Failure::into_activity_error`] reports.
            EdgeActivityFailed { .. } => "EdgeActivityFailed",
            Cancelled => "Cancelled",
            Internal(_) => "Internal",
        }
    }

    /// Structured details for workflows: the status and body excerpt of an HTTP failure.
    fn details(&self) -> Option<serde_json::Value> {
        match self {
            Failure::HttpStatus {
                status, excerpt, ..
            } => Some(serde_json::json!({ "status": status, "body_excerpt": excerpt })),
            Failure::WebhookRejected { status, .. } => {
                Some(serde_json::json!({ "status": status }))
            }
            Failure::SmtpRejected { code, .. } => Some(serde_json::json!({ "code": code })),
            Failure::EdgeUnavailable { status, .. } => {
                Some(serde_json::json!({ "status": status }))
            }
            Failure::InvalidOutput(e) => serde_json::to_value(e.details()).ok(),
            _ => None,
        }
    }
}

impl Failure {
    /// The SDK error for this failure: an application failure typed [`Failure::type_name`],
    /// non-retryable per [`Failure::retry`], with the next retry delay when there is one; or a
    /// cancellation.
    ///
    /// (Not a `From` impl: the SDK's blanket `From<E: Error>` would turn any failure into a
    /// plain retryable one, so `?` on a `Failure` in an activity is a bug; convert explicitly.)
    pub fn into_activity_error(self) -> ActivityError {
        let failure = match self {
            // The same failure as a refused workflow input or update, so callers in any SDK read
            // one contract: type and details.
            Failure::InvalidInput(e) => return ActivityError::application(e.into_failure()),
            // The handler's type name, as it threw it, so workflows match on what the edge said.
            Failure::EdgeActivityFailed {
                type_name,
                message,
                non_retryable,
            } => {
                return ActivityError::application(
                    ApplicationFailure::builder(message)
                        .type_name(type_name)
                        .non_retryable(non_retryable)
                        .build(),
                );
            }
            other => other,
        };
        let (non_retryable, next_retry_delay) = match failure.retry() {
            Retry::Cancelled => return ActivityError::cancelled(),
            Retry::No => (true, None),
            Retry::Yes { after } => (false, after),
        };
        let type_name = failure.type_name().to_owned();
        let details = failure.details();
        let app = ApplicationFailure::builder(failure)
            .type_name(type_name)
            .non_retryable(non_retryable)
            .maybe_next_retry_delay(next_retry_delay)
            .maybe_details(details)
            .build();
        ActivityError::application(app)
    }
}

/// How an activity attempt ended, as this worker saw it: the `outcome` label of the activity
/// metrics, the `outcome` field of the attempt's log line and the drain report's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Completed in time.
    Ok,
    /// Failed; Temporal will retry.
    Retryable,
    /// Failed for good.
    NonRetryable,
    /// Ended at or after its deadline (start-to-close or schedule-to-close): Temporal has already
    /// timed the attempt out, so whatever it returned is discarded. The SDK does not pass on why
    /// an attempt was cancelled, so the deadline is what tells a timeout from a cancellation.
    TimedOut,
    /// Cancelled before its deadline: by its workflow, or by a shutdown's grace deadline.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in a stable order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Retryable,
        Outcome::NonRetryable,
        Outcome::TimedOut,
        Outcome::Cancelled,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retryable => "retryable",
            Outcome::NonRetryable => "non_retryable",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// What an attempt returned to the SDK (a [`Failure`] arrives here through
    /// [`Failure::into_activity_error`]), and whether it ended at or past `deadline`.
    pub fn of<T>(
        result: &Result<T, ActivityError>,
        deadline: Option<SystemTime>,
        now: SystemTime,
    ) -> Self {
        if deadline.is_some_and(|d| now >= d) {
            return Outcome::TimedOut;
        }
        match result {
            Ok(_) | Err(ActivityError::WillCompleteAsync) => Outcome::Ok,
            Err(ActivityError::Cancelled { .. }) => Outcome::Cancelled,
            Err(ActivityError::Application(f)) if f.is_non_retryable() => Outcome::NonRetryable,
            Err(_) => Outcome::Retryable,
        }
    }
}

/// The delay a response's `Retry-After` header asks for, if it has a valid one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A `Retry-After` value: delta-seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The first [`EXCERPT_BYTES`] of a body, as text.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    if body.len() > EXCERPT_BYTES {
        text.push('…');
    }
    text
}

/// A transport-level HTTP failure (no status received).
pub fn from_reqwest(target: &str, err: &reqwest::Error) -> Failure {
    let chain = error_chain(err);
    if err.is_timeout() {
        Failure::Timeout(format!("{target}: {chain}"))
    } else if err.is_builder() {
        Failure::invalid_input(format!("cannot build request to {target}: {chain}"))
    } else if err.is_redirect() {
        Failure::HttpStatus {
            status: 310,
            target: target.to_owned(),
            retry_after: None,
            excerpt: format!("redirect loop: {chain}"),
        }
    } else {
        // Connect errors, resets, bodies cut off mid-way: the network, not the request.
        Failure::Connection(format!("{target}: {chain}"))
    }
}

/// A database error, classified by driver error code.
pub fn from_sqlx(err: sqlx::Error) -> Failure {
    use sqlx::Error as E;
    match &err {
        E::Database(db) => {
            let message = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                return classify_sqlstate(pg.code(), message);
            }
            match db.code() {
                Some(code) => match code.parse::<i32>() {
                    Ok(sqlite_code) => classify_sqlite(sqlite_code, message),
                    Err(_) => classify_sqlstate(&code, message),
                },
                None => Failure::DbRejected(message),
            }
        }
        E::PoolTimedOut => Failure::DbUnavailable("no free connection in the pool in time".into()),
        E::PoolClosed => Failure::DbUnavailable("the pool is closed (shutting down)".into()),
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::WorkerCrashed => {
            Failure::DbUnavailable(error_chain(&err))
        }
        E::Encode(_)
        | E::Decode(_)
        | E::ColumnDecode { .. }
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::RowNotFound
        | E::Configuration(_) => Failure::DbRejected(error_chain(&err)),
        _ => Failure::Internal(error_chain(&err)),
    }
}

/// PostgreSQL SQLSTATE classes and codes (appendix A of its manual).
pub fn classify_sqlstate(code: &str, message: String) -> Failure {
    match code {
        "40001" | "40P01" | "55P03" => Failure::DbConflict(format!("{code}: {message}")),
        "57014" => Failure::Timeout(format!("statement cancelled ({code}): {message}")),
        "57P01" | "57P02" | "57P03" => Failure::DbUnavailable(format!("{code}: {message}")),
        _ if code.starts_with("08") || code.starts_with("53") => {
            Failure::DbUnavailable(format!("{code}: {message}"))
        }
        _ if code.starts_with("23") => Failure::Constraint(format!("{code}: {message}")),
        _ => Failure::DbRejected(format!("{code}: {message}")),
    }
}

/// SQLite result codes (primary code in the low byte of an extended code).
pub fn classify_sqlite(code: i32, message: String) -> Failure {
    match code & 0xff {
        5 | 6 => Failure::DbConflict(format!("SQLite {code}: {message}")),
        19 => Failure::Constraint(format!("SQLite {code}: {message}")),
        10 | 13 | 14 => Failure::DbUnavailable(format!("SQLite {code}: {message}")),
        _ => Failure::DbRejected(format!("SQLite {code}: {message}")),
    }
}

/// An SMTP failure: the server's reply code decides; no reply means the network.
pub fn from_smtp(err: &lettre::transport::smtp::Error) -> Failure {
    let chain = error_chain(err);
    if let Some(code) = err.status() {
        let code: u16 = code.to_string().parse().unwrap_or(0);
        return Failure::SmtpRejected {
            code,
            message: chain,
        };
    }
    if err.is_timeout() {
        Failure::Timeout(format!("SMTP: {chain}"))
    } else {
        Failure::Connection(format!("SMTP: {chain}"))
    }
}

/// An error and its sources, joined by ": ".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn http(status: u16, retry_after: Option<u64>) -> Failure {
        Failure::HttpStatus {
            status,
            target: "svc".into(),
            retry_after: retry_after.map(Duration::from_secs),
            excerpt: String::new(),
        }
    }

    const NO: Retry = Retry::No;
    const YES: Retry = Retry::Yes { after: None };
    fn after(secs: u64) -> Retry {
        Retry::Yes {
            after: Some(Duration::from_secs(secs)),
        }
    }

    /// Every case the issue lists, one row each.
    #[test]
    fn the_retry_table() {
        let table: Vec<(&str, Failure, Retry)> = vec![
            // HTTP status mapping
            ("429 with Retry-After", http(429, Some(7)), after(7)),
            ("429 without Retry-After", http(429, None), YES),
            ("503 with Retry-After", http(503, Some(30)), after(30)),
            ("503 without Retry-After", http(503, None), YES),
            ("500", http(500, None), YES),
            ("502", http(502, None), YES),
            ("504", http(504, None), YES),
            ("408 request timeout", http(408, None), YES),
            ("400", http(400, None), NO),
            ("401", http(401, None), NO),
            ("403", http(403, None), NO),
            ("404", http(404, None), NO),
            ("409", http(409, None), NO),
            ("422", http(422, None), NO),
            ("500 ignores Retry-After", http(500, Some(9)), YES),
            ("302 not followed", http(302, None), NO),
            // transport
            ("timeout", Failure::Timeout("x".into()), YES),
            ("connection reset", Failure::Connection("reset".into()), YES),
            (
                "response too large",
                Failure::ResponseTooLarge {
                    target: "svc".into(),
                    limit_bytes: 10,
                },
                NO,
            ),
            // input
            ("invalid input", Failure::invalid_input("x"), NO),
            (
                "unknown service",
                Failure::UnknownName {
                    kind: "service",
                    name: "x".into(),
                },
                NO,
            ),
            (
                "unknown statement",
                Failure::UnknownName {
                    kind: "statement",
                    name: "x".into(),
                },
                NO,
            ),
            (
                "unknown template",
                Failure::UnknownName {
                    kind: "template",
                    name: "x".into(),
                },
                NO,
            ),
            ("path escape", Failure::PathEscape("..".into()), NO),
            (
                "header injection",
                Failure::HeaderInjection {
                    field: "subject".into(),
                },
                NO,
            ),
            (
                "bad address",
                Failure::BadAddress {
                    address: "x".into(),
                    reason: "no @".into(),
                },
                NO,
            ),
            (
                "missing template variable",
                Failure::Template {
                    template: "t".into(),
                    message: "undefined".into(),
                },
                NO,
            ),
            // database
            ("constraint", Failure::Constraint("23505".into()), NO),
            ("bad parameter", Failure::DbRejected("22P02".into()), NO),
            (
                "lost connection",
                Failure::DbUnavailable("08006".into()),
                YES,
            ),
            ("pool timeout", Failure::DbUnavailable("pool".into()), YES),
            (
                "serialization failure",
                Failure::DbConflict("40001".into()),
                YES,
            ),
            // email
            (
                "SMTP 451",
                Failure::SmtpRejected {
                    code: 451,
                    message: String::new(),
                },
                YES,
            ),
            (
                "SMTP 550",
                Failure::SmtpRejected {
                    code: 550,
                    message: String::new(),
                },
                NO,
            ),
            ("email API key in flight", Failure::IdempotencyInFlight, YES),
            // webhook: anything but 2xx retries, honouring Retry-After
            (
                "webhook 400",
                Failure::WebhookRejected {
                    endpoint: "e".into(),
                    status: 400,
                    retry_after: None,
                },
                YES,
            ),
            (
                "webhook 429 with Retry-After",
                Failure::WebhookRejected {
                    endpoint: "e".into(),
                    status: 429,
                    retry_after: Some(Duration::from_secs(5)),
                },
                after(5),
            ),
            // edge activities: the edge's or the network's trouble retries, the handler decides
            (
                "edge 401 (key rotation, deploy order)",
                Failure::EdgeUnavailable {
                    reason: "unauthorized",
                    status: 401,
                    excerpt: String::new(),
                },
                YES,
            ),
            (
                "edge 404 (activity not deployed yet)",
                Failure::EdgeUnavailable {
                    reason: "not_found",
                    status: 404,
                    excerpt: String::new(),
                },
                YES,
            ),
            (
                "edge 400 (deadline past by the edge's clock: skew, a slow request)",
                Failure::EdgeUnavailable {
                    reason: "bad_request",
                    status: 400,
                    excerpt: String::new(),
                },
                YES,
            ),
            (
                "edge 413 (input over the edge's body cap)",
                Failure::InvalidInput(InputError::at("$", "too large")),
                NO,
            ),
            (
                "edge 502",
                Failure::EdgeUnavailable {
                    reason: "server_error",
                    status: 502,
                    excerpt: String::new(),
                },
                YES,
            ),
            (
                "edge handler threw ActivityError(nonRetryable)",
                Failure::EdgeActivityFailed {
                    type_name: "OutOfStock".into(),
                    message: "m".into(),
                    non_retryable: true,
                },
                NO,
            ),
            (
                "edge handler threw a plain Error",
                Failure::EdgeActivityFailed {
                    type_name: "Error".into(),
                    message: "m".into(),
                    non_retryable: false,
                },
                YES,
            ),
            (
                "edge output breaks its schema",
                Failure::InvalidOutput(InputError::at("$.key", "is required")),
                NO,
            ),
            (
                "start-to-close above max_attempt_secs",
                Failure::AttemptTooLong {
                    timeout_secs: 600,
                    max_secs: 300,
                },
                NO,
            ),
            // other
            (
                "token file unreadable",
                Failure::Credentials("x".into()),
                YES,
            ),
            ("unexpected", Failure::Internal("x".into()), YES),
            ("cancelled", Failure::Cancelled, Retry::Cancelled),
        ];
        for (case, failure, expected) in table {
            assert_eq!(failure.retry(), expected, "{case}");
        }
    }

    #[test]
    fn sqlstates_are_classified_by_class() {
        let table = [
            ("23505", "Constraint"),    // unique_violation
            ("23503", "Constraint"),    // foreign_key_violation
            ("23502", "Constraint"),    // not_null_violation
            ("23514", "Constraint"),    // check_violation
            ("22P02", "DbRejected"),    // invalid_text_representation (bad parameter)
            ("22003", "DbRejected"),    // numeric_value_out_of_range
            ("42P01", "DbRejected"),    // undefined_table
            ("42601", "DbRejected"),    // syntax_error
            ("40001", "DbConflict"),    // serialization_failure
            ("40P01", "DbConflict"),    // deadlock_detected
            ("55P03", "DbConflict"),    // lock_not_available
            ("08006", "DbUnavailable"), // connection_failure
            ("08003", "DbUnavailable"), // connection_does_not_exist
            ("57P01", "DbUnavailable"), // admin_shutdown
            ("53300", "DbUnavailable"), // too_many_connections
            ("57014", "Timeout"),       // query_canceled (statement_timeout)
        ];
        for (code, kind) in table {
            assert_eq!(
                classify_sqlstate(code, String::new()).type_name(),
                kind,
                "{code}"
            );
        }
    }

    #[test]
    fn sqlite_codes_are_classified_by_primary_code() {
        let table = [
            (5, "DbConflict"),     // SQLITE_BUSY
            (517, "DbConflict"),   // SQLITE_BUSY_SNAPSHOT
            (6, "DbConflict"),     // SQLITE_LOCKED
            (19, "Constraint"),    // SQLITE_CONSTRAINT
            (2067, "Constraint"),  // SQLITE_CONSTRAINT_UNIQUE
            (1299, "Constraint"),  // SQLITE_CONSTRAINT_NOTNULL
            (275, "Constraint"),   // SQLITE_CONSTRAINT_CHECK
            (10, "DbUnavailable"), // SQLITE_IOERR
            (13, "DbUnavailable"), // SQLITE_FULL
            (1, "DbRejected"),     // SQLITE_ERROR (syntax, no such table)
            (20, "DbRejected"),    // SQLITE_MISMATCH
        ];
        for (code, kind) in table {
            assert_eq!(
                classify_sqlite(code, String::new()).type_name(),
                kind,
                "{code}"
            );
        }
    }

    #[test]
    fn sqlx_transport_errors_retry_and_decode_errors_do_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(from_sqlx(io).retry(), YES);
        assert_eq!(from_sqlx(sqlx::Error::PoolTimedOut).retry(), YES);
        assert_eq!(
            from_sqlx(sqlx::Error::ColumnNotFound("x".into())).retry(),
            NO
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates_and_is_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(45));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(45)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(45));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn activity_errors_carry_type_retryability_and_delay() {
        let err = http(429, Some(7)).into_activity_error();
        let ActivityError::Application(app) = err else {
            panic!("expected an application failure")
        };
        assert_eq!(app.type_name(), Some("HttpStatus"));
        assert!(!app.is_non_retryable());
        assert_eq!(app.next_retry_delay(), Some(Duration::from_secs(7)));

        let err = Failure::PathEscape("..".into()).into_activity_error();
        let ActivityError::Application(app) = err else {
            panic!("expected an application failure")
        };
        assert!(app.is_non_retryable());
        assert_eq!(app.type_name(), Some("PathEscape"));

        assert!(matches!(
            Failure::Cancelled.into_activity_error(),
            ActivityError::Cancelled { .. }
        ));
    }

    #[test]
    fn outcomes_follow_the_retry_table_and_the_deadline() {
        let now = SystemTime::now();
        let past = Some(now - Duration::from_secs(1));
        let future = Some(now + Duration::from_secs(1));
        let outcome = |failure: Failure, deadline| {
            Outcome::of::<()>(&Err(failure.into_activity_error()), deadline, now)
        };
        let table = [
            (Failure::invalid_input("x"), None, Outcome::NonRetryable),
            (http(404, None), future, Outcome::NonRetryable),
            (http(503, Some(7)), None, Outcome::Retryable),
            (Failure::Timeout("t".into()), future, Outcome::Retryable),
            (Failure::Cancelled, None, Outcome::Cancelled),
            (Failure::Cancelled, future, Outcome::Cancelled),
            // Past its deadline Temporal has timed the attempt out, whatever it returned.
            (Failure::Cancelled, past, Outcome::TimedOut),
            (http(500, None), past, Outcome::TimedOut),
        ];
        for (failure, deadline, want) in table {
            assert_eq!(outcome(failure.clone(), deadline), want, "{failure:?}");
        }
        assert_eq!(
            Outcome::of(&Ok::<(), ActivityError>(()), future, now),
            Outcome::Ok
        );
        assert_eq!(
            Outcome::of(&Ok::<(), ActivityError>(()), past, now),
            Outcome::TimedOut
        );
        assert_eq!(
            Outcome::ALL.map(Outcome::as_str),
            ["ok", "retryable", "non_retryable", "timed_out", "cancelled"]
        );
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = vec![b'a'; 5000];
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_BYTES + 1);
        assert_eq!(excerpt(b"short"), "short");
    }
}
