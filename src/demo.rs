//! Demo microservices for `edgeflow dev`: inventory, payments and shipping on one loopback port,
//! so the `order` workflow runs on a fresh clone. Not for production.
//!
//! Routes (each answers JSON, and honours `Idempotency-Key` by returning the first answer again):
//! - `POST /inventory/reservations/{order_id}`, `DELETE /inventory/reservations/{order_id}`
//! - `POST /payments/charges/{order_id}`, `POST /payments/refunds/{order_id}`
//! - `POST /shipping/notices/{order_id}`
//!
//! `dev.demo_failure` makes one service misbehave, to try retries and compensation:
//! `flaky:<service>` answers 503 twice per order, then succeeds; `down:<service>` answers 422
//! (a permanent failure) every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How `dev.demo_failure` asks one service to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    None,
    Flaky(String),
    Down(String),
}

impl Failure {
    pub const SERVICES: [&'static str; 3] = ["inventory", "payments", "shipping"];

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not `none`, `flaky:<service>` or `down:<service>` (services: {})",
                Self::SERVICES.join(", ")
            )
        };
        match s.split_once(':') {
            None if s == "none" => Ok(Failure::None),
            Some((mode, service)) if Self::SERVICES.contains(&service) => match mode {
                "flaky" => Ok(Failure::Flaky(service.to_string())),
                "down" => Ok(Failure::Down(service.to_string())),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

#[derive(Clone)]
struct Demo {
    failure: Failure,
    /// Calls seen per (service, order), for `flaky`.
    calls: Arc<Mutex<HashMap<(String, String), u32>>>,
    /// First answer per Idempotency-Key.
    answers: Arc<Mutex<HashMap<String, (u16, Value)>>>,
}

pub fn router(failure: Failure) -> axum::Router {
    let state = Demo {
        failure,
        calls: Default::default(),
        answers: Default::default(),
    };
    axum::Router::new()
        .route(
            "/inventory/reservations/{order_id}",
            post(|s, h, p| handle(s, h, p, "inventory", "reserved"))
                .delete(|s, h, p| handle(s, h, p, "inventory", "released")),
        )
        .route(
            "/payments/charges/{order_id}",
            post(|s, h, p| handle(s, h, p, "payments", "charged")),
        )
        .route(
            "/payments/refunds/{order_id}",
            post(|s, h, p| handle(s, h, p, "payments", "refunded")),
        )
        .route(
            "/shipping/notices/{order_id}",
            post(|s, h, p| handle(s, h, p, "shipping", "notified")),
        )
        .with_state(state)
}

async fn handle(
    State(demo): State<Demo>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    service: &'static str,
    outcome: &'static str,
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(key) = &key {
        if let Some((status, body)) = demo
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
        {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                axum::Json(body),
            )
                .into_response();
        }
    }
    let attempt = {
        let mut calls = demo.calls.lock().unwrap_or_else(|p| p.into_inner());
        let n = calls
            .entry((service.to_string(), order_id.clone()))
            .or_default();
        *n += 1;
        *n
    };
    // Compensations (release, refund) always succeed: the demo is about the forward path failing.
    let compensation = matches!(outcome, "released" | "refunded");
    match &demo.failure {
        Failure::Flaky(s) if s == service && !compensation && attempt <= 2 => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "try again"})),
            )
                .into_response();
        }
        Failure::Down(s) if s == service && !compensation => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"error": format!("{service} refused order {order_id}")})),
            )
                .into_response();
        }
        _ => {}
    }
    let body =
        json!({ "service": service, "order_id": order_id, "outcome": outcome, "attempt": attempt });
    if let Some(key) = key {
        demo.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (200, body.clone()));
    }
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_modes_parse_and_bad_ones_say_why() {
        assert_eq!(Failure::parse("none"), Ok(Failure::None));
        assert_eq!(
            Failure::parse("flaky:payments"),
            Ok(Failure::Flaky("payments".into()))
        );
        assert_eq!(
            Failure::parse("down:shipping"),
            Ok(Failure::Down("shipping".into()))
        );
        assert!(
            Failure::parse("down:billing")
                .unwrap_err()
                .contains("inventory, payments, shipping")
        );
        assert!(Failure::parse("sometimes").is_err());
    }
}
