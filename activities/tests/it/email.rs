//! `email.send` against a real SMTP server process (aiosmtpd), the Resend API's wire format
//! (wiremock), and the outbox folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use edgeflow_activities::db::{Database, DbSettings};
use edgeflow_activities::email::{
    EmailActivities, EmailSendInput, EmailSettings, OutboxSettings, ResendSettings, SmtpSettings,
};
use edgeflow_activities::{CallContext, Failure, IdempotencyKey, Retry};
use edgeflow_testkit::smtp::{SmtpOptions, SmtpServer};
use mailparse::{MailHeaderMap, ParsedMail};
use serde_json::json;
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates")
}

/// A SQLite ledger in a temp folder.
async fn ledger() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let settings = DbSettings {
        url: format!("sqlite://{}/ledger.db?mode=rwc", dir.path().display()).into(),
        ..Default::default()
    };
    (Database::connect(&settings).await.unwrap(), dir)
}

fn base_settings() -> EmailSettings {
    EmailSettings {
        from: "Edgeflow Shop <orders@shop.example>".into(),
        reply_to: Some("support@shop.example".into()),
        templates_dir: templates_dir(),
        ..Default::default()
    }
}

fn smtp_settings(port: u16) -> EmailSettings {
    EmailSettings {
        transport: "smtp".into(),
        smtp: SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            security: "plain".into(),
            timeout_secs: 5.0,
            ..Default::default()
        },
        ..base_settings()
    }
}

struct Fixture {
    email: EmailActivities,
    _ledger_dir: tempfile::TempDir,
}

async fn fixture(settings: EmailSettings) -> Fixture {
    assert_eq!(settings.validate(), vec![]);
    let (db, dir) = ledger().await;
    let email = EmailActivities::new(&settings, db).unwrap();
    Fixture {
        email,
        _ledger_dir: dir,
    }
}

fn confirmation(step: &str) -> EmailSendInput {
    EmailSendInput {
        step: step.into(),
        template: "order_confirmation".into(),
        to: vec!["Ada Lovelace <ada@example.com>".into()],
        cc: vec!["accounts@example.com".into()],
        bcc: vec!["audit@shop.example".into()],
        reply_to: None,
        vars: json!({
            "customer_name": "Ada <script>",
            "order_id": "o-1001",
            "total": "12.50 EUR",
            "items": [{"name": "Tea", "quantity": 2}]
        })
        .as_object()
        .unwrap()
        .clone(),
    }
}

fn ctx() -> CallContext {
    CallContext::detached("order-o-1001", "run-1")
}

fn expected_message_id(step: &str) -> String {
    let key = IdempotencyKey::new("order-o-1001", step).unwrap();
    format!("<{}@shop.example>", key.digest())
}

fn parts(mail: &ParsedMail<'_>) -> (String, String) {
    let text = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .unwrap();
    let html = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/html")
        .unwrap();
    (text.get_body().unwrap(), html.get_body().unwrap())
}

#[tokio::test]
async fn smtp_delivers_the_rendered_message_with_its_headers() {
    let server = SmtpServer::start().unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let out = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap();
    assert_eq!(out.transport, "smtp");
    assert_eq!(out.message_id, expected_message_id("confirm"));
    assert!(!out.replayed);

    let messages = server.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.mail_from, "orders@shop.example");
    let mut rcpt = received.rcpt_to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "accounts@example.com",
            "ada@example.com",
            "audit@shop.example"
        ]
    );

    let mail = mailparse::parse_mail(received.data.as_bytes()).unwrap();
    let h = &mail.headers;
    assert_eq!(
        h.get_first_value("Subject").unwrap(),
        "Order o-1001 confirmed"
    );
    assert_eq!(
        h.get_first_value("From").unwrap(),
        "\"Edgeflow Shop\" <orders@shop.example>"
    );
    assert_eq!(
        h.get_first_value("To").unwrap(),
        "\"Ada Lovelace\" <ada@example.com>"
    );
    assert_eq!(h.get_first_value("Cc").unwrap(), "accounts@example.com");
    assert_eq!(
        h.get_first_value("Reply-To").unwrap(),
        "support@shop.example"
    );
    assert_eq!(
        h.get_first_value("Message-ID").unwrap(),
        expected_message_id("confirm")
    );
    assert!(
        h.get_first_value("Bcc").is_none(),
        "Bcc stays in the envelope"
    );
    // The key Resend's SMTP relay dedupes on: the same one its HTTP API gets.
    let key = IdempotencyKey::new("order-o-1001", "confirm").unwrap();
    assert_eq!(
        h.get_first_value("Resend-Idempotency-Key").unwrap(),
        format!("edgeflow-{}", key.digest())
    );
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let (text, html) = parts(&mail);
    assert!(text.contains("Hello Ada <script>,"), "{text}");
    assert!(text.contains("2 × Tea"), "{text}");
    assert!(html.contains("Hello Ada &lt;script&gt;,"), "{html}");
    // (So that `sessions() == 0` elsewhere means something.)
    assert!(server.sessions() >= 1);
}

#[tokio::test]
async fn a_retry_after_a_successful_send_does_not_send_again() {
    let server = SmtpServer::start().unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let first = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap();
    let retry = f
        .email
        .send_message(&ctx().with_attempt(2), confirmation("confirm"))
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.message_id, first.message_id);
    let other_step = f
        .email
        .send_message(&ctx(), confirmation("confirm-again"))
        .await
        .unwrap();
    assert_ne!(other_step.message_id, first.message_id);
    let messages = server.wait_for_messages(2, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 2, "{messages:?}");
}

/// The SMTP window: the server has taken the message but not yet said `250` when the activity is
/// cancelled (its timeout, a shutdown's deadline). The send still records itself the moment the
/// server answers, so the retry replays instead of sending a second copy.
#[tokio::test]
async fn a_send_cancelled_while_the_server_accepts_is_recorded_and_not_sent_again() {
    let server = SmtpServer::start_with(SmtpOptions {
        accept_delay: Duration::from_millis(1500),
        ..Default::default()
    })
    .unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let first = ctx();
    let canceller = first.clone();
    let cancelled = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        canceller.cancel();
    });
    let err = f
        .email
        .send_message(&first, confirmation("confirm"))
        .await
        .unwrap_err();
    cancelled.await.unwrap();
    assert_eq!(err, Failure::Cancelled);
    assert_eq!(server.wait_for_messages(1, Duration::from_secs(5)).len(), 1);
    // The server answers 1.5 s after taking the message; the retry comes after that.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let retry = f
        .email
        .send_message(&ctx().with_attempt(2), confirmation("confirm"))
        .await
        .unwrap();
    assert!(retry.replayed, "the retry sent again: {retry:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.messages().len(), 1, "one message, not two");
}

/// The SMTP window under load: every database connection is busy when the server says `250`.
/// The send took its ledger connection before sending, so recording waits for nothing and the
/// retry replays; had it asked the pool after the send, it would have timed out unrecorded.
#[tokio::test]
async fn recording_a_send_never_waits_for_a_busy_database_pool() {
    use edgeflow_activities::db::{DbActivities, DbExecuteInput, DbStatementCall};
    let server = SmtpServer::start_with(SmtpOptions {
        accept_delay: Duration::from_millis(1000),
        ..Default::default()
    })
    .unwrap();
    let pg = tokio::task::spawn_blocking(edgeflow_testkit::postgres::Postgres::start)
        .await
        .unwrap()
        .unwrap();
    let queries = tempfile::tempdir().unwrap();
    std::fs::write(
        queries.path().join("hold.sql"),
        "-- mode: read\nSELECT 1 AS n FROM pg_sleep(2)",
    )
    .unwrap();
    let db_settings = DbSettings {
        url: pg.create_database().unwrap().into(),
        max_connections: 1,
        acquire_timeout_secs: 1.0,
        queries_dir: queries.path().to_path_buf(),
        ..Default::default()
    };
    let db = Database::connect(&db_settings).await.unwrap();
    let settings = smtp_settings(server.port());
    let email = EmailActivities::new(&settings, db.clone()).unwrap();
    let sql = DbActivities::new(db, &db_settings).await.unwrap();

    let sending = tokio::spawn({
        let email = email.clone();
        async move { email.send_message(&ctx(), confirmation("confirm")).await }
    });
    // While the server takes the message, another activity wants the only connection for 2 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holding = tokio::spawn(async move {
        sql.execute_statements(
            &CallContext::detached("other", "run"),
            DbExecuteInput {
                step: "hold".into(),
                statements: vec![DbStatementCall {
                    name: "hold".into(),
                    params: Default::default(),
                }],
            },
        )
        .await
    });
    let first = sending.await.unwrap().unwrap();
    assert!(!first.replayed);
    let _ = holding.await.unwrap();
    let retry = email
        .send_message(&ctx().with_attempt(2), confirmation("confirm"))
        .await
        .unwrap();
    assert!(retry.replayed, "the send was never recorded: {retry:?}");
    assert_eq!(server.messages().len(), 1, "one message, not two");
}

#[tokio::test]
async fn injection_and_bad_input_are_refused_before_connecting() {
    let server = SmtpServer::start().unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let mut cases: Vec<(EmailSendInput, &str)> = Vec::new();
    let mut i = confirmation("x");
    i.to = vec!["ada@example.com\r\nBcc: eve@evil.example".into()];
    cases.push((i, "HeaderInjection"));
    let mut i = confirmation("x");
    i.cc = vec!["ok@example.com\nX-Spam: yes".into()];
    cases.push((i, "HeaderInjection"));
    let mut i = confirmation("x");
    i.reply_to = Some("a@example.com\r\nSubject: hijacked".into());
    cases.push((i, "HeaderInjection"));
    let mut i = confirmation("x");
    i.vars
        .insert("order_id".into(), json!("1\r\nBcc: eve@evil.example"));
    cases.push((i, "HeaderInjection"));
    let mut i = confirmation("x");
    i.to = vec!["not an address".into()];
    cases.push((i, "BadAddress"));
    let mut i = confirmation("x");
    i.bcc = vec!["eve@".into()];
    cases.push((i, "BadAddress"));
    let mut i = confirmation("x");
    i.template = "../../etc/passwd".into();
    cases.push((i, "UnknownName"));
    let mut i = confirmation("x");
    i.vars.remove("total");
    cases.push((i, "Template"));
    let mut i = confirmation("x");
    i.to = (0..60).map(|n| format!("r{n}@example.com")).collect();
    cases.push((i, "InvalidInput"));
    for (input, kind) in cases {
        let err = f
            .email
            .send_message(&ctx(), input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.type_name(), kind, "{input:?}: {err}");
        assert_eq!(err.retry(), Retry::No);
    }
    assert_eq!(server.sessions(), 0, "nothing connected to the SMTP server");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_temporary_smtp_refusal_is_retried_and_sends_once() {
    let server = SmtpServer::start_with(SmtpOptions {
        fail_first: 1,
        fail_reply: "451 4.3.0 Mailbox busy, try again".into(),
        ..Default::default()
    })
    .unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let err = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Failure::SmtpRejected { code: 451, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Yes { after: None });
    let out = f
        .email
        .send_message(&ctx().with_attempt(2), confirmation("confirm"))
        .await
        .unwrap();
    assert!(
        !out.replayed,
        "the first attempt sent nothing, so the retry really sends"
    );
    assert_eq!(server.wait_for_messages(1, Duration::from_secs(5)).len(), 1);
}

#[tokio::test]
async fn a_permanent_smtp_refusal_is_not_retried() {
    let server = SmtpServer::start_with(SmtpOptions {
        fail_first: 5,
        fail_reply: "550 5.1.1 No such mailbox".into(),
        ..Default::default()
    })
    .unwrap();
    let f = fixture(smtp_settings(server.port())).await;
    let err = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Failure::SmtpRejected { code: 550, .. }),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::No);
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retried() {
    let f = fixture(smtp_settings(edgeflow_testkit::tools::free_port())).await;
    let err = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap_err();
    assert_eq!(err.retry(), Retry::Yes { after: None }, "{err:?}");
}

#[tokio::test]
async fn the_outbox_holds_one_parseable_eml_per_step() {
    let outbox = tempfile::tempdir().unwrap();
    let settings = EmailSettings {
        transport: "outbox".into(),
        outbox: OutboxSettings {
            dir: outbox.path().join("mail"),
        },
        ..base_settings()
    };
    let f = fixture(settings).await;
    let out = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap();
    let retry = f
        .email
        .send_message(&ctx().with_attempt(2), confirmation("confirm"))
        .await
        .unwrap();
    assert!(retry.replayed);

    let files: Vec<PathBuf> = std::fs::read_dir(outbox.path().join("mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].file_name().unwrap().to_str(),
        out.provider_id.as_deref()
    );
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    let bytes = std::fs::read(&files[0]).unwrap();
    let mail = mailparse::parse_mail(&bytes).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Message-ID").unwrap(),
        out.message_id
    );
    assert_eq!(
        mail.headers.get_first_value("Subject").unwrap(),
        "Order o-1001 confirmed"
    );
    let (text, _) = parts(&mail);
    assert!(text.contains("Total: 12.50 EUR"));
}

#[tokio::test]
async fn resend_gets_its_request_format_and_idempotency_key() {
    let api = MockServer::start().await;
    let key = IdempotencyKey::new("order-o-1001", "confirm").unwrap();
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_123"))
        .and(header(
            "idempotency-key",
            format!("edgeflow-{}", key.digest()).as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"})),
        )
        .expect(1)
        .mount(&api)
        .await;
    let settings = EmailSettings {
        transport: "resend".into(),
        resend: ResendSettings {
            api_key: Some("re_test_123".into()),
            base_url: api.uri(),
            timeout_secs: 5.0,
        },
        ..base_settings()
    };
    let f = fixture(settings).await;
    let out = f
        .email
        .send_message(&ctx(), confirmation("confirm"))
        .await
        .unwrap();
    assert_eq!(
        out.provider_id.as_deref(),
        Some("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794")
    );
    // The ledger answers the retry; Resend is not called again.
    assert!(
        f.email
            .send_message(&ctx(), confirmation("confirm"))
            .await
            .unwrap()
            .replayed
    );

    let body: serde_json::Value = api.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(body["from"], "Edgeflow Shop <orders@shop.example>");
    assert_eq!(body["to"], json!(["Ada Lovelace <ada@example.com>"]));
    assert_eq!(body["cc"], json!(["accounts@example.com"]));
    assert_eq!(body["bcc"], json!(["audit@shop.example"]));
    assert_eq!(body["reply_to"], "support@shop.example");
    assert_eq!(body["subject"], "Order o-1001 confirmed");
    assert!(body["text"].as_str().unwrap().contains("2 × Tea"));
    assert!(body["html"].as_str().unwrap().contains("&lt;script&gt;"));
}

#[tokio::test]
async fn resend_failures_are_classified() {
    let api = MockServer::start().await;
    Mock::given(header("idempotency-key", format!("edgeflow-{}", IdempotencyKey::new("order-o-1001", "busy").unwrap().digest()).as_str()))
        .respond_with(ResponseTemplate::new(409).set_body_json(
            json!({"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"}),
        ))
        .mount(&api)
        .await;
    Mock::given(header(
        "idempotency-key",
        format!(
            "edgeflow-{}",
            IdempotencyKey::new("order-o-1001", "limited")
                .unwrap()
                .digest()
        )
        .as_str(),
    ))
    .respond_with(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "2")
            .set_body_json(
                json!({"statusCode": 429, "name": "rate_limit_exceeded", "message": "slow down"}),
            ),
    )
    .mount(&api)
    .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(422).set_body_json(
            json!({"statusCode": 422, "name": "validation_error", "message": "The `from` domain is not verified"}),
        ))
        .mount(&api)
        .await;
    let settings = EmailSettings {
        transport: "resend".into(),
        resend: ResendSettings {
            api_key: Some("re_test".into()),
            base_url: api.uri(),
            timeout_secs: 5.0,
        },
        ..base_settings()
    };
    let f = fixture(settings).await;
    let err = f
        .email
        .send_message(&ctx(), confirmation("busy"))
        .await
        .unwrap_err();
    assert_eq!(err, Failure::IdempotencyInFlight);
    assert_eq!(err.retry(), Retry::Yes { after: None });
    let err = f
        .email
        .send_message(&ctx(), confirmation("limited"))
        .await
        .unwrap_err();
    assert_eq!(
        err.retry(),
        Retry::Yes {
            after: Some(Duration::from_secs(2))
        }
    );
    let err = f
        .email
        .send_message(&ctx(), confirmation("invalid"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not verified"), "{err}");
    assert_eq!(err.retry(), Retry::No);
}
