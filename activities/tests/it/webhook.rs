//! `webhook.notify` against a loopback receiver, signatures checked by an independent
//! implementation (the `standardwebhooks` crate, which shares no code with ours).

use std::time::Duration;

use base64::Engine;
use edgeflow_activities::webhook::{
    CompletionEvent, CompletionStatus, EndpointSettings, WebhookActivities, WebhookNotifyInput,
    WebhookSettings, WorkflowCompletion,
};
use edgeflow_activities::{CallContext, Failure, IdempotencyKey, Retry};
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn new_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    )
}

fn activities(url: String, secrets: Vec<String>, timeout_secs: f64) -> WebhookActivities {
    let settings = WebhookSettings {
        endpoints: [(
            "edge".to_owned(),
            EndpointSettings {
                url,
                secrets: secrets.into_iter().map(Into::into).collect(),
                timeout_secs,
            },
        )]
        .into(),
    };
    assert_eq!(settings.validate(), vec![]);
    WebhookActivities::new(&settings).unwrap()
}

fn ctx() -> CallContext {
    CallContext::detached("order-o-1001", "run-9").with_workflow_type("OrderWorkflow")
}

fn progress(step: &str) -> WebhookNotifyInput {
    WebhookNotifyInput {
        step: step.into(),
        endpoint: "edge".into(),
        event_type: "order.progress".into(),
        data: json!({"order_id": "o-1001", "stage": "paid"}),
    }
}

fn verify(secret: &str, r: &Request) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(&r.body, &r.headers)
}

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/hooks/temporal"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn events_are_signed_per_standard_webhooks_with_the_contract_body() {
    let server = receiver(204).await;
    let hooks = activities(
        format!("{}/v1/hooks/temporal", server.uri()),
        vec![OLD_SECRET.into()],
        5.0,
    );
    let completion = WorkflowCompletion {
        workflow_id: "order-o-1001".into(),
        run_id: "run-9".into(),
        workflow_type: "OrderWorkflow".into(),
        status: CompletionStatus::Completed,
        result: Some(json!({"order_id": "o-1001", "status": "confirmed"})),
        error: None,
    };
    let out = hooks
        .deliver_event(
            &ctx(),
            WebhookNotifyInput::completion("completed", "edge", &completion),
        )
        .await
        .unwrap();
    let key = IdempotencyKey::new("order-o-1001", "completed").unwrap();
    assert_eq!(out.webhook_id, format!("msg_{}", key.digest()));
    assert_eq!(out.status, 204);

    let requests = server.received_requests().await.unwrap();
    let r = &requests[0];
    verify(OLD_SECRET, r).expect("an independent implementation accepts the signature");
    assert_eq!(r.headers["webhook-id"], out.webhook_id.as_str());
    assert_eq!(r.headers["content-type"], "application/json");
    let ts: i64 = r.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() <= 5);

    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["data", "timestamp", "type"]
    );
    assert_eq!(body["type"], "workflow.completed");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(
        body["data"],
        json!({
            "workflow_id": "order-o-1001", "run_id": "run-9", "workflow_type": "OrderWorkflow",
            "status": "completed", "result": {"order_id": "o-1001", "status": "confirmed"}, "error": null
        })
    );
    // The body is the exported contract: valid against its schema, and the Rust type reads it.
    let schema = serde_json::to_value(schemars::schema_for!(CompletionEvent)).unwrap();
    assert!(jsonschema::is_valid(&schema, &body), "{body}");
    let event: CompletionEvent = serde_json::from_value(body).unwrap();
    assert_eq!(event.data, completion);
    // Tampering is detected by the same independent check.
    let mut tampered = r.clone();
    tampered.body = br#"{"type":"workflow.completed","timestamp":"x","data":{}}"#.to_vec();
    assert!(verify(OLD_SECRET, &tampered).is_err());
}

/// A run cannot report another run's outcome: the identity fields come from the caller.
#[tokio::test]
async fn a_completion_event_names_the_run_that_sent_it_whatever_the_input_says() {
    let server = receiver(204).await;
    let hooks = activities(
        format!("{}/v1/hooks/temporal", server.uri()),
        vec![OLD_SECRET.into()],
        5.0,
    );
    let forged = WorkflowCompletion {
        workflow_id: "order-victim".into(),
        run_id: "victim-run".into(),
        workflow_type: "order".into(),
        status: CompletionStatus::Completed,
        result: Some(json!({"forged": true})),
        error: None,
    };
    hooks
        .deliver_event(
            &ctx(),
            WebhookNotifyInput::completion("completed", "edge", &forged),
        )
        .await
        .unwrap();
    let r = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["data"]["workflow_id"], "order-o-1001");
    assert_eq!(body["data"]["run_id"], "run-9");
    assert_eq!(body["data"]["workflow_type"], "OrderWorkflow");

    // Other event types pass through as given; a completion whose data is not an object is refused.
    let mut odd = progress("not-an-object");
    odd.event_type = "workflow.completed".into();
    odd.data = json!("done");
    let err = hooks.deliver_event(&ctx(), odd).await.unwrap_err();
    assert!(matches!(err, Failure::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn two_secrets_both_sign_so_receivers_can_rotate() {
    let server = receiver(200).await;
    let hooks = activities(
        format!("{}/v1/hooks/temporal", server.uri()),
        vec![OLD_SECRET.into(), new_secret()],
        5.0,
    );
    hooks.deliver_event(&ctx(), progress("p1")).await.unwrap();
    let r = &server.received_requests().await.unwrap()[0];
    let signatures = r.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2);
    assert!(signatures.split(' ').all(|s| s.starts_with("v1,")));
    verify(OLD_SECRET, r).expect("a receiver still on the old secret accepts");
    verify(&new_secret(), r).expect("a receiver already on the new secret accepts");
    let unrelated = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([1u8; 32])
    );
    assert!(verify(&unrelated, r).is_err());
}

#[tokio::test]
async fn retries_resend_the_same_id_and_body() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let hooks = activities(server.uri(), vec![OLD_SECRET.into()], 5.0);
    let call = ctx();
    let err = hooks.deliver_event(&call, progress("p")).await.unwrap_err();
    assert_eq!(
        err.retry(),
        Retry::Yes {
            after: Some(Duration::from_secs(3))
        }
    );
    hooks
        .deliver_event(&call.clone().with_attempt(2), progress("p"))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].headers["webhook-id"],
        requests[1].headers["webhook-id"]
    );
    assert_eq!(
        requests[0].body, requests[1].body,
        "the body is identical on every attempt"
    );
    for r in &requests {
        verify(OLD_SECRET, r).unwrap();
    }
}

#[tokio::test]
async fn anything_but_2xx_fails_retryably() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    for status in [400u16, 401, 404, 410, 500, 502] {
        let server = receiver(status).await;
        let hooks = activities(
            format!("{}/v1/hooks/temporal", server.uri()),
            vec![OLD_SECRET.into()],
            5.0,
        );
        let err = hooks
            .deliver_event(&ctx(), progress("p"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Failure::WebhookRejected { status: s, .. } if s == status),
            "{err:?}"
        );
        assert_eq!(err.retry(), Retry::Yes { after: None }, "{status}");
    }
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(308).insert_header("location", elsewhere.uri()))
        .mount(&server)
        .await;
    let hooks = activities(server.uri(), vec![OLD_SECRET.into()], 5.0);
    let err = hooks
        .deliver_event(&ctx(), progress("p"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Failure::WebhookRejected { status: 308, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn slow_receivers_time_out_retryably() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let hooks = activities(server.uri(), vec![OLD_SECRET.into()], 0.3);
    let err = hooks
        .deliver_event(&ctx(), progress("p"))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Timeout(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::Yes { after: None });
}

#[tokio::test]
async fn bad_input_is_refused_without_sending() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let hooks = activities(server.uri(), vec![OLD_SECRET.into()], 5.0);
    let mut unknown = progress("p");
    unknown.endpoint = "attacker".into();
    assert_eq!(
        hooks.deliver_event(&ctx(), unknown).await.unwrap_err(),
        Failure::UnknownName {
            kind: "endpoint",
            name: "attacker".into()
        }
    );
    for event_type in ["", "Workflow.Completed", "a b", "x\r\ny", &"a".repeat(101)] {
        let mut bad = progress("p");
        bad.event_type = event_type.into();
        let err = hooks.deliver_event(&ctx(), bad).await.unwrap_err();
        assert!(
            matches!(err, Failure::InvalidInput(_)),
            "{event_type:?}: {err:?}"
        );
        assert_eq!(err.retry(), Retry::No);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}
