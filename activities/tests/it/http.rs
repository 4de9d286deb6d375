//! `http.call` against real HTTP servers on loopback (wiremock, plus a raw TCP server where
//! wiremock cannot observe what is measured).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgeflow_activities::http::{
    AuthSettings, HttpActivities, HttpCallInput, HttpMethod, HttpSettings, ServiceSettings,
};
use edgeflow_activities::{CallContext, Failure, Retry};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn service(base_url: String) -> ServiceSettings {
    ServiceSettings {
        base_url,
        ..Default::default()
    }
}

fn activities(services: Vec<(&str, ServiceSettings)>) -> HttpActivities {
    let settings = HttpSettings {
        services: services
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s))
            .collect(),
    };
    assert_eq!(settings.validate(), vec![], "test settings must be valid");
    HttpActivities::new(&settings).unwrap()
}

fn get(step: &str, service: &str, path: &str) -> HttpCallInput {
    HttpCallInput {
        step: step.into(),
        service: service.into(),
        method: HttpMethod::Get,
        path: path.into(),
        path_params: BTreeMap::new(),
        query: BTreeMap::new(),
        body: None,
        headers: BTreeMap::new(),
    }
}

fn ctx() -> CallContext {
    CallContext::detached("order-1001", "run-1")
}

fn idempotency_key(r: &Request) -> String {
    r.headers["idempotency-key"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn json_answer_with_selected_headers_and_a_stable_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/orders/A%2042"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "A 42", "total_cents": 1250}))
                .insert_header("etag", "\"v7\"")
                .insert_header("x-internal", "not returned"),
        )
        .expect(3)
        .mount(&server)
        .await;
    let http = activities(vec![("orders", service(format!("{}/v1", server.uri())))]);

    let mut input = get("fetch", "orders", "/orders/{id}");
    input.path_params.insert("id".into(), "A 42".into());
    let out = http.call_service(&ctx(), input.clone()).await.unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.json, Some(json!({"id": "A 42", "total_cents": 1250})));
    assert_eq!(out.text, None);
    assert_eq!(out.headers.get("etag").map(String::as_str), Some("\"v7\""));
    assert!(!out.headers.contains_key("x-internal"));

    // A retry (attempt 2) sends the same key; another step sends another.
    http.call_service(&ctx().with_attempt(2), input.clone())
        .await
        .unwrap();
    input.step = "fetch-again".into();
    http.call_service(&ctx(), input).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let keys: Vec<String> = requests.iter().map(idempotency_key).collect();
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[0], keys[2]);
    assert_eq!(keys[0].len(), 32);
    assert!(
        requests[0].headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("edgeflow/")
    );
}

#[tokio::test]
async fn body_query_and_allowed_headers_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/charges"))
        .respond_with(ResponseTemplate::new(201).set_body_string("created"))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = service(format!("{}/api/", server.uri()));
    s.allowed_request_headers = vec!["X-Request-Id".into()];
    s.headers.insert("x-team".into(), "payments".into());
    let http = activities(vec![("payments", s)]);

    let mut input = get("charge", "payments", "charges");
    input.method = HttpMethod::Post;
    input.body = Some(json!({"amount_cents": 500}));
    input.query.insert("dry run".into(), "yes&no".into());
    input.headers.insert("x-request-id".into(), "req-1".into());
    let out = http.call_service(&ctx(), input).await.unwrap();
    assert_eq!(out.status, 201);
    assert_eq!(out.text.as_deref(), Some("created"));
    assert_eq!(out.json, None);

    let r = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        r.body_json::<serde_json::Value>().unwrap(),
        json!({"amount_cents": 500})
    );
    assert_eq!(r.url.query(), Some("dry+run=yes%26no"));
    assert_eq!(r.headers["x-request-id"], "req-1");
    assert_eq!(r.headers["x-team"], "payments");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn bad_headers_are_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.allowed_request_headers = vec!["x-request-id".into()];
    let http = activities(vec![("svc", s)]);

    let mut not_allowed = get("s", "svc", "/");
    not_allowed
        .headers
        .insert("authorization".into(), "Bearer stolen".into());
    let err = http.call_service(&ctx(), not_allowed).await.unwrap_err();
    assert!(matches!(err, Failure::InvalidInput(_)), "{err:?}");

    let mut injected = get("s", "svc", "/");
    injected
        .headers
        .insert("x-request-id".into(), "a\r\nx-admin: 1".into());
    let err = http.call_service(&ctx(), injected).await.unwrap_err();
    assert!(matches!(err, Failure::HeaderInjection { .. }), "{err:?}");
    assert_eq!(err.retry(), Retry::No);

    let mut get_with_body = get("s", "svc", "/");
    get_with_body.body = Some(json!({}));
    assert!(matches!(
        http.call_service(&ctx(), get_with_body).await,
        Err(Failure::InvalidInput(_))
    ));
}

#[tokio::test]
async fn statuses_map_to_retryable_or_not() {
    let server = MockServer::start().await;
    let at = |p: &'static str, t: ResponseTemplate| Mock::given(path(p)).respond_with(t);
    at(
        "/404",
        ResponseTemplate::new(404).set_body_string("x".repeat(5000)),
    )
    .mount(&server)
    .await;
    at(
        "/422",
        ResponseTemplate::new(422).set_body_json(json!({"error": "amount must be positive"})),
    )
    .mount(&server)
    .await;
    at("/500", ResponseTemplate::new(500)).mount(&server).await;
    at("/502", ResponseTemplate::new(502)).mount(&server).await;
    at(
        "/429",
        ResponseTemplate::new(429).insert_header("retry-after", "7"),
    )
    .mount(&server)
    .await;
    let in_30s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    at(
        "/503",
        ResponseTemplate::new(503).insert_header("retry-after", in_30s.as_str()),
    )
    .mount(&server)
    .await;
    at("/503-bare", ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let http = activities(vec![("svc", service(server.uri()))]);
    let caller = ctx();
    let call = |p: &'static str| http.call_service(&caller, get("s", "svc", p));

    let err = call("/404").await.unwrap_err();
    let Failure::HttpStatus {
        status, excerpt, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 404);
    assert!(excerpt.len() <= 512 + '…'.len_utf8(), "excerpt is bounded");
    assert_eq!(err.retry(), Retry::No);

    let err = call("/422").await.unwrap_err();
    assert!(err.to_string().contains("amount must be positive"), "{err}");
    assert_eq!(err.retry(), Retry::No);

    assert_eq!(
        call("/500").await.unwrap_err().retry(),
        Retry::Yes { after: None }
    );
    assert_eq!(
        call("/502").await.unwrap_err().retry(),
        Retry::Yes { after: None }
    );
    assert_eq!(
        call("/429").await.unwrap_err().retry(),
        Retry::Yes {
            after: Some(Duration::from_secs(7))
        }
    );
    let Retry::Yes { after: Some(after) } = call("/503").await.unwrap_err().retry() else {
        panic!("503 with Retry-After retries after it")
    };
    assert!(
        (Duration::from_secs(28)..=Duration::from_secs(30)).contains(&after),
        "{after:?}"
    );
    assert_eq!(
        call("/503-bare").await.unwrap_err().retry(),
        Retry::Yes { after: None }
    );
}

#[tokio::test]
async fn slow_answers_time_out_retryably() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.timeout_secs = 0.3;
    let http = activities(vec![("svc", s)]);
    let started = Instant::now();
    let err = http
        .call_service(&ctx(), get("s", "svc", "/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Timeout(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::Yes { after: None });
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_connections_retry() {
    let port = edgeflow_testkit::tools::free_port();
    let http = activities(vec![("svc", service(format!("http://127.0.0.1:{port}/")))]);
    let err = http
        .call_service(&ctx(), get("s", "svc", "/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Connection(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::Yes { after: None });
}

#[tokio::test]
async fn responses_over_the_cap_fail() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2000)))
        .mount(&server)
        .await;
    Mock::given(path("/small"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(1000)))
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.max_response_bytes = 1000;
    let http = activities(vec![("svc", s)]);
    let err = http
        .call_service(&ctx(), get("s", "svc", "/big"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Failure::ResponseTooLarge {
                limit_bytes: 1000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::No);
    let out = http
        .call_service(&ctx(), get("s", "svc", "/small"))
        .await
        .unwrap();
    assert_eq!(out.text.unwrap().len(), 1000);
}

#[tokio::test]
async fn no_path_escape_attempt_reaches_the_server() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let http = activities(vec![("svc", service(format!("{}/base/", server.uri())))]);
    let templates = [
        "../admin",
        "/../admin",
        "/a/../../admin",
        "./x",
        "/%2e%2e/admin",
        "/a%2Fb",
        "/a%252Fb",
        "//evil.example/x",
        "http://evil.example/x",
        "https://evil.example",
        "\\\\evil.example\\x",
        "/x?redirect=http://evil",
        "/x#y",
    ];
    for template in templates {
        let err = http
            .call_service(&ctx(), get("s", "svc", template))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Failure::PathEscape(_)),
            "{template:?}: {err:?}"
        );
        assert_eq!(err.retry(), Retry::No);
    }
    for value in ["..", ".", "../admin", "a/b", "a\\b"] {
        let mut input = get("s", "svc", "/items/{id}");
        input.path_params.insert("id".into(), value.into());
        let err = http.call_service(&ctx(), input).await.unwrap_err();
        assert!(matches!(err, Failure::PathEscape(_)), "{value:?}: {err:?}");
    }
    let err = http
        .call_service(&ctx(), get("s", "other", "/"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Failure::UnknownName {
            kind: "service",
            name: "other".into()
        }
    );
    // `expect(0)` is verified when `server` drops; check explicitly for a clear message too.
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn redirects_are_followed_only_below_the_base() {
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    Mock::given(path("/v1/moved"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/v1/here"))
        .mount(&server)
        .await;
    Mock::given(path("/v1/here"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&server)
        .await;
    Mock::given(path("/v1/escape-path"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/admin"))
        .mount(&server)
        .await;
    Mock::given(path("/v1/escape-host"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/v1/x", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(path("/admin"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let http = activities(vec![("svc", service(format!("{}/v1/", server.uri())))]);

    let out = http
        .call_service(&ctx(), get("s", "svc", "/moved"))
        .await
        .unwrap();
    assert_eq!(out.json, Some(json!({"ok": true})));
    for p in ["/escape-path", "/escape-host"] {
        let err = http
            .call_service(&ctx(), get("s", "svc", p))
            .await
            .unwrap_err();
        let Failure::HttpStatus { status, .. } = &err else {
            panic!("{p}: {err:?}")
        };
        assert!((300..400).contains(status));
        assert_eq!(err.retry(), Retry::No, "{p}");
    }
}

#[tokio::test]
async fn oauth2_tokens_are_cached_refreshed_before_expiry_and_after_a_401() {
    let auth_server = MockServer::start().await;
    // Basic base64("edgeflow:s3cret")
    let basic = "Basic ZWRnZWZsb3c6czNjcmV0";
    for (token, expires_in) in [("t1", 2), ("t2", 3600), ("t3", 3600)] {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(header("authorization", basic))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
            ))
            .up_to_n_times(1)
            .expect(1)
            .mount(&auth_server)
            .await;
    }
    let api = MockServer::start().await;
    // The API rejects t2 once (as after a key rotation on its side), accepts t1 and t3.
    Mock::given(header("authorization", "Bearer t2"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&api)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&api)
        .await;
    let mut s = service(api.uri());
    s.auth = Some(AuthSettings {
        kind: "oauth2_client_credentials".into(),
        token_url: Some(format!("{}/oauth/token", auth_server.uri())),
        client_id: Some("edgeflow".into()),
        client_secret: Some("s3cret".into()),
        scopes: vec!["orders.read".into(), "orders.write".into()],
        refresh_before_secs: 1,
        ..Default::default()
    });
    let http = activities(vec![("api", s)]);

    // Two calls share t1 (valid for 2 s, refreshed 1 s early).
    http.call_service(&ctx(), get("a", "api", "/"))
        .await
        .unwrap();
    http.call_service(&ctx(), get("b", "api", "/"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // t1 is now within its refresh margin: t2 is fetched, rejected with 401, and replaced by
    // t3 within the same call.
    http.call_service(&ctx(), get("c", "api", "/"))
        .await
        .unwrap();

    let sent: Vec<String> = api
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["Bearer t1", "Bearer t1", "Bearer t2", "Bearer t3"]);
    let token_requests = auth_server.received_requests().await.unwrap();
    let form = String::from_utf8(token_requests[0].body.clone()).unwrap();
    assert_eq!(
        form,
        "grant_type=client_credentials&scope=orders.read+orders.write"
    );
}

#[tokio::test]
async fn a_token_endpoint_refusing_the_client_is_not_retried() {
    let auth_server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&auth_server)
        .await;
    let api = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&api)
        .await;
    let mut s = service(api.uri());
    s.auth = Some(AuthSettings {
        kind: "oauth2_client_credentials".into(),
        token_url: Some(format!("{}/token", auth_server.uri())),
        client_id: Some("edgeflow".into()),
        client_secret: Some("wrong".into()),
        ..Default::default()
    });
    let http = activities(vec![("api", s)]);
    let err = http
        .call_service(&ctx(), get("a", "api", "/"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(err.retry(), Retry::No);
}

#[tokio::test]
async fn bearer_token_files_are_reread_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first-token\n").unwrap();
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.auth = Some(AuthSettings {
        kind: "bearer".into(),
        token_file: Some(file.clone()),
        ..Default::default()
    });
    let http = activities(vec![("svc", s)]);
    http.call_service(&ctx(), get("a", "svc", "/"))
        .await
        .unwrap();
    std::fs::write(&file, "the-second-token").unwrap();
    http.call_service(&ctx(), get("b", "svc", "/"))
        .await
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let err = http
        .call_service(&ctx(), get("c", "svc", "/"))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Credentials(_)), "{err:?}");
    assert_eq!(err.retry(), Retry::Yes { after: None });

    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, ["Bearer first-token", "Bearer the-second-token"]);
}

#[tokio::test]
async fn static_header_auth_is_sent() {
    let server = MockServer::start().await;
    Mock::given(header("x-api-key", "k-123"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.auth = Some(AuthSettings {
        kind: "header".into(),
        header_name: Some("X-Api-Key".into()),
        header_value: Some("k-123".into()),
        ..Default::default()
    });
    let http = activities(vec![("svc", s)]);
    http.call_service(&ctx(), get("a", "svc", "/"))
        .await
        .unwrap();
}

/// A raw HTTP/1.1 server that answers every request after `delay` and records the most
/// requests it had in flight at once (wiremock cannot observe concurrency).
async fn counting_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let max_out = max.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (in_flight, max) = (in_flight.clone(), max.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{}")
                    .await;
            });
        }
    });
    (format!("http://{addr}/"), max_out)
}

#[tokio::test]
async fn concurrency_limits_hold_across_concurrent_activities() {
    let (url, max_in_flight) = counting_server(Duration::from_millis(150)).await;
    let mut s = service(url);
    s.max_concurrent = 2;
    let http = activities(vec![("svc", s)]);
    let http = Arc::new(http);
    let started = Instant::now();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let http = http.clone();
            tokio::spawn(async move {
                http.call_service(&ctx(), get(&format!("s{i}"), "svc", "/"))
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 2);
    // 8 calls, 2 at a time, 150 ms each.
    assert!(
        started.elapsed() >= Duration::from_millis(590),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rate_limits_pace_request_starts() {
    let (url, _) = counting_server(Duration::ZERO).await;
    let mut s = service(url);
    s.rate_per_sec = Some(20.0);
    let http = activities(vec![("svc", s)]);
    let http = Arc::new(http);
    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let http = http.clone();
            tokio::spawn(async move {
                http.call_service(&ctx(), get(&format!("s{i}"), "svc", "/"))
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Starts at 0, 50, …, 250 ms.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(245), "{elapsed:?}");
}

#[tokio::test]
async fn long_calls_heartbeat_and_stop_promptly_when_cancelled() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&server)
        .await;
    let mut s = service(server.uri());
    s.timeout_secs = 60.0;
    let http = activities(vec![("svc", s)]);
    let call = ctx().with_heartbeat_every(Duration::from_millis(50));
    let canceller = call.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let err = http
        .call_service(&call, get("s", "svc", "/"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, Failure::Cancelled);
    // Cancelled at 400 ms; well before the 20 s answer, with room for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(call.heartbeats() >= 5, "heartbeats: {}", call.heartbeats());
}

/// CPU time of the calling thread, from the scheduler's accounting (ns resolution).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// A keep-alive HTTP/1.1 server on its own OS thread (so its CPU is not the client's) that
/// answers every request with `{}`.
fn keep_alive_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
    });
    format!("http://{addr}/")
}

/// The activity's own cost (no Temporal in the loop): `http.call` in a tight loop against a
/// loopback server. Run with
/// `cargo test --release -p edgeflow-activities --test http -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn throughput_of_no_op_calls() {
    let http = activities(vec![("noop", service(keep_alive_server()))]);
    let calls = 20_000;
    for i in 0..200 {
        http.call_service(&ctx(), get(&format!("warm-{i}"), "noop", "/"))
            .await
            .unwrap();
    }
    let (wall, cpu) = (Instant::now(), thread_cpu());
    for i in 0..calls {
        http.call_service(&ctx(), get(&format!("s{i}"), "noop", "/ping"))
            .await
            .unwrap();
    }
    let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
    println!(
        "sequential: {calls} calls in {wall:.2?}: {:.0} calls/s, {:.1} µs CPU per call (client thread)",
        calls as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / calls as f64
    );

    let http = Arc::new(http);
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let http = http.clone();
        tasks.spawn(async move {
            for i in 0..calls / 16 {
                http.call_service(&ctx(), get(&format!("c{worker}-{i}"), "noop", "/ping"))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
    println!(
        "16 concurrent: {calls} calls in {wall:.2?}: {:.0} calls/s, {:.1} µs CPU per call (client thread)",
        calls as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / calls as f64
    );
}

#[tokio::test]
async fn requests_carry_the_traceparent_of_the_calling_span() {
    use opentelemetry::trace::{
        FutureExt as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let http = activities(vec![("svc", service(server.uri()))]);

    // Outside a trace no header is invented.
    http.call_service(&ctx(), get("s", "svc", "/"))
        .await
        .unwrap();
    // Inside one (the activity's span, as the worker's interceptor makes it current), the
    // service is told which trace and span called it.
    let caller = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    http.call_service(&ctx(), get("s", "svc", "/"))
        .with_context(caller)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(!requests[0].headers.contains_key("traceparent"));
    assert_eq!(
        requests[1].headers["traceparent"].to_str().unwrap(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert!(
        !requests[1].headers.contains_key("baggage"),
        "the edge's request id and caller stay inside edgeflow"
    );
}
