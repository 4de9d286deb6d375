//! `edgeflow gateway` against a real Temporal dev server, reached through the recording gRPC
//! proxy (so the tests see every call and the credentials it carried), with a real
//! `edgeflow worker` running the `order` workflow where an operation needs one (query, and runs
//! that close). Each request carries an ES256 token minted here the way the edge mints them: bound
//! to the request it is sent with (method, path and query, body hash).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{KillOnDrop, WorkerProcess, edgeflow, unique_queue, wait_exit};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use edgeflow_testkit::grpc_proxy::RecordingProxy;
use edgeflow_testkit::temporal::{self, DevServer, http_get};
use edgeflow_testkit::tools::free_port;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AUDIENCE: &str = "edgeflow-gateway";
const ISSUER: &str = "edgeflow-edge";
const NO_SHORTHAND: &str = "application/json+no-payload-shorthand";

/// An edge signing key, as the edge Worker holds it.
struct EdgeKey {
    pair: EcdsaKeyPair,
    kid: String,
}

impl EdgeKey {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            pair,
            kid: kid.to_string(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])})
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", B64URL.encode(sig.as_ref()))
    }

    /// A fresh token minted at send time for the request it goes with, with `changes` applied
    /// to the usual claims (the binding claims included).
    fn token(&self, changes: Value) -> Auth<'_> {
        Auth::Mint(self, changes)
    }

    /// A token for exactly this request (method, path and query, body), as the edge mints one.
    fn bound(&self, method: &str, path: &str, body: &[u8], changes: &Value) -> String {
        let mut claims = claims();
        claims["htm"] = json!(method);
        claims["htu"] = json!(path);
        claims["bsh"] = json!(body_hash(body));
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.sign(&self.kid, &claims)
    }
}

/// How a test request is authorized.
#[derive(Clone)]
enum Auth<'a> {
    None,
    /// Minted when sent, bound to that request.
    Mint(&'a EdgeKey, Value),
    /// Sent as is: garbage, a replay, a token minted for another request.
    Raw(String),
}

/// A token's `bsh`: base64url (unpadded) of the body's SHA-256.
fn body_hash(body: &[u8]) -> String {
    B64URL.encode(ring::digest::digest(&ring::digest::SHA256, body))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    let now = now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "rid": format!("req-{}", uuid::Uuid::new_v4()),
           "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 30})
}

fn jwks(keys: &[&EdgeKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// A running `edgeflow gateway`.
struct Gateway {
    process: KillOnDrop,
    url: String,
    ops: String,
    log: PathBuf,
}

impl Gateway {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The dev server, the proxy in front of it, a gateway behind the proxy, and its files.
struct Stack {
    server: &'static DevServer,
    proxy: RecordingProxy,
    gateway: Gateway,
    key: EdgeKey,
    queue: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Stack {
    async fn up(test: &str) -> Self {
        let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
        let proxy = RecordingProxy::start(format!("127.0.0.1:{}", server.grpc_port()))
            .await
            .expect("proxy");
        let dir = tempfile::tempdir().unwrap();
        let key = EdgeKey::new("edge-1");
        std::fs::write(dir.path().join("jwks.json"), jwks(&[&key])).unwrap();
        std::fs::write(dir.path().join("api-key"), "key-one\n").unwrap();
        let queue = unique_queue(test);
        let gateway = spawn_gateway(&proxy.address(), &queue, dir.path()).await;
        Stack {
            server,
            proxy,
            gateway,
            key,
            queue,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/api/v1/namespaces/default/workflows/{rest}")
    }

    /// A call to the gateway with `token`; answers (status, JSON body).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Auth<'_>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        send(&self.http, &self.gateway.url, method, path, token, body).await
    }

    /// The same call straight to the dev server's HTTP API.
    async fn direct(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        send(
            &self.http,
            &self.server.http_url(),
            method,
            path,
            Auth::None,
            body,
        )
        .await
    }

    /// Workflow-service calls the proxy has seen (the gateway's readiness probe excluded).
    fn workflow_calls(&self) -> Vec<String> {
        self.proxy
            .calls()
            .iter()
            .filter(|c| !matches!(c.method(), "DescribeNamespace" | "GetSystemInfo"))
            .map(|c| c.method().to_string())
            .collect()
    }

    async fn worker(&self) -> WorkerProcess {
        let mocks = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&mocks)
            .await;
        let env = vec![
            (
                "EDGEFLOW__WEBHOOKS__EDGE__URL",
                format!("{}/hook", mocks.uri()),
            ),
            (
                "EDGEFLOW__DATABASE__URL",
                format!(
                    "sqlite://{}/edgeflow.db?mode=rwc",
                    self.dir.path().display()
                ),
            ),
            (
                "EDGEFLOW__EMAIL__OUTBOX__DIR",
                self.dir.path().join("outbox").display().to_string(),
            ),
        ];
        let worker = WorkerProcess::ready(self.server.address(), self.queue.clone(), env).await;
        // The webhook receiver must outlive the test's runs.
        std::mem::forget(mocks);
        worker
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Auth<'_>,
    body: Option<&Value>,
) -> (u16, Value) {
    let text = body.map(Value::to_string);
    let mut request = http
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("Accept", NO_SHORTHAND)
        .timeout(Duration::from_secs(40));
    let token = match token {
        Auth::None => None,
        Auth::Raw(t) => Some(t),
        Auth::Mint(key, changes) => Some(key.bound(
            method,
            path,
            text.as_deref().unwrap_or_default().as_bytes(),
            &changes,
        )),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(text) = text {
        request = request
            .header("Content-Type", "application/json")
            .body(text);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn spawn_gateway(temporal: &str, queue: &str, dir: &std::path::Path) -> Gateway {
    let jwks = (
        "EDGEFLOW__GATEWAY__JWKS_FILE",
        dir.join("jwks.json").display().to_string(),
    );
    spawn_gateway_with(temporal, queue, dir, &[jwks]).await
}

async fn spawn_gateway_with(
    temporal: &str,
    queue: &str,
    dir: &std::path::Path,
    extra: &[(&str, String)],
) -> Gateway {
    let port = free_port();
    let ops = format!("127.0.0.1:{}", free_port());
    let log = dir.join("gateway.log");
    let env = [
        ("EDGEFLOW__TEMPORAL__ADDRESS", temporal.to_string()),
        (
            "EDGEFLOW__TEMPORAL__API_KEY_FILE",
            dir.join("api-key").display().to_string(),
        ),
        ("EDGEFLOW__TEMPORAL__CREDENTIALS_CHECK_SECS", "1".into()),
        ("EDGEFLOW__TASK_QUEUES__MAIN__NAME", queue.to_string()),
        ("EDGEFLOW__GATEWAY__LISTEN", format!("127.0.0.1:{port}")),
        ("EDGEFLOW__OPS__LISTEN", ops.clone()),
        ("EDGEFLOW__SHUTDOWN__GRACE_PERIOD_SECS", "30".into()),
        ("RUST_LOG", "info".into()),
    ];
    let out = std::fs::File::create(&log).unwrap();
    let child = edgeflow(&["gateway"], &env)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn edgeflow gateway");
    let mut process = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let probe = ops.clone();
    loop {
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!(
                "gateway exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let ready = {
            let probe = probe.clone();
            tokio::task::spawn_blocking(move || http_get(&probe, "/readyz"))
                .await
                .unwrap()
                .is_ok_and(|(s, _)| s == 200)
        };
        if ready && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway never became ready:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Gateway {
        process,
        url: format!("http://127.0.0.1:{port}"),
        ops,
        log,
    }
}

fn json_payload(value: &Value) -> Value {
    json!({"metadata": {"encoding": B64.encode("json/plain")}, "data": B64.encode(value.to_string())})
}

fn decode_payload(payload: &Value) -> Value {
    let data = B64
        .decode(payload["data"].as_str().unwrap_or_default())
        .unwrap();
    serde_json::from_slice(&data).unwrap()
}

/// A start body as the edge's Temporal client writes it.
fn start_body(
    id: &str,
    workflow_type: &str,
    queue: &str,
    input: &Value,
    request_id: &str,
) -> Value {
    json!({
        "workflowId": id,
        "workflowType": {"name": workflow_type},
        "taskQueue": {"name": queue},
        "input": {"payloads": [json_payload(input)]},
        "identity": "edge:ada",
        "requestId": request_id,
        "workflowIdReusePolicy": "WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE",
        "workflowIdConflictPolicy": "WORKFLOW_ID_CONFLICT_POLICY_FAIL",
        "memo": {"fields": {"edge_subject": json_payload(&json!("ada")), "edge_request_id": json_payload(&json!("req")),
                            "edge_input_sha256": json_payload(&json!("abc"))}},
        "searchAttributes": {"indexedFields": {"EdgeSubject": json_payload(&json!("ada")),
                                               "EdgeRequestId": json_payload(&json!("req"))}},
        "header": {"fields": {}},
    })
}

fn large_order(order_id: &str) -> Value {
    json!({"order_id": order_id, "customer_email": "grace@example.com", "customer_name": "Grace",
           "items": [{"sku": "server-rack", "name": "Server rack", "quantity": 1, "unit_price_cents": 250000}],
           "amount_cents": 250000, "currency": "EUR"})
}

/// The JSON's shape: every key kept, every value replaced by its type.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_never_reach_temporal() {
    let stack = Stack::up("gw-refuse").await;
    let path = stack.path("refused-1");
    let body = start_body(
        "refused-1",
        "order",
        &stack.queue,
        &large_order("o-1"),
        "r-1",
    );
    let key = &stack.key;
    let stranger = EdgeKey::new("edge-1");
    let now = now();
    let nothing_here = stack.path("nothing-here");
    let replayed = key.bound("GET", &nothing_here, b"", &json!({}));
    let first = stack
        .call("GET", &nothing_here, Auth::Raw(replayed.clone()), None)
        .await;
    assert_eq!(first.0, 404, "a valid token reaches Temporal: {first:?}");
    let before = stack.workflow_calls();
    assert_eq!(before, ["DescribeWorkflowExecution"]);
    // The identical request again, same token: this replica remembers the jti.
    let again = stack
        .call("GET", &nothing_here, Auth::Raw(replayed.clone()), None)
        .await;
    assert_eq!(
        (again.0, again.1["detail"].as_str()),
        (401, Some("the token was already used"))
    );
    // Minted for one request, tried on others (the attack: a token for a signal to one run
    // sent as a signal to another): refused for the binding, and the token stays unused.
    let signal_a = stack.path("run-a/signal/approve");
    let for_a = key.bound("POST", &signal_a, b"{}", &json!({}));
    let other_body = body_hash(br#"{"reason":"other"}"#);

    let unauthorized = [
        ("no token", Auth::None),
        ("garbage", Auth::Raw("not-a-jwt".to_string())),
        (
            "expired",
            key.token(json!({"iat": now - 100, "exp": now - 40})),
        ),
        (
            "future iat",
            key.token(json!({"iat": now + 120, "exp": now + 150})),
        ),
        (
            "lives too long",
            key.token(json!({"iat": now, "exp": now + 3600})),
        ),
        ("wrong audience", key.token(json!({"aud": "someone-else"}))),
        ("wrong issuer", key.token(json!({"iss": "someone-else"}))),
        ("no subject", key.token(json!({"sub": ""}))),
        ("no request id", key.token(json!({"rid": null}))),
        ("wrong key, same kid", stranger.token(json!({}))),
        ("unknown kid", Auth::Raw(stranger.sign("edge-9", &claims()))),
        ("replayed on another request", Auth::Raw(replayed.clone())),
        (
            "minted for a signal to another run",
            Auth::Raw(for_a.clone()),
        ),
        ("another method", key.token(json!({"htm": "PUT"}))),
        ("another path", key.token(json!({"htu": signal_a}))),
        (
            "another query",
            key.token(json!({"htu": format!("{path}?x=1")})),
        ),
        ("another body", key.token(json!({"bsh": other_body}))),
        ("no method claim", key.token(json!({"htm": null}))),
        ("no body hash", key.token(json!({"bsh": null}))),
    ];
    for (what, token) in &unauthorized {
        let (status, problem) = stack.call("POST", &path, token.clone(), Some(&body)).await;
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["status"], 401, "{what}: {problem}");
        assert!(problem["detail"].is_string(), "{what}: {problem}");
    }
    // HS256 with the public key as a secret, the classic confusion: refused for its algorithm.
    let hs = format!(
        "{}.{}.{}",
        B64URL.encode(json!({"alg": "HS256", "kid": "edge-1"}).to_string()),
        B64URL.encode(claims().to_string()),
        B64URL.encode("sig")
    );
    let (status, problem) = stack.call("POST", &path, Auth::Raw(hs), Some(&body)).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (401, Some("the token's algorithm must be ES256"))
    );

    let t = || key.token(json!({}));
    let forbidden = [
        ("terminate", "POST", stack.path("w/terminate"), 403),
        ("reset", "POST", stack.path("w/reset"), 403),
        ("delete", "DELETE", stack.path("w"), 403),
        (
            "list",
            "GET",
            "/api/v1/namespaces/default/workflows".to_string(),
            403,
        ),
        (
            "signal-with-start",
            "POST",
            stack.path("w/signal-with-start/approve"),
            403,
        ),
        ("full history", "GET", stack.path("w/history"), 403),
        (
            "other namespace",
            "GET",
            "/api/v1/namespaces/payments/workflows/w".to_string(),
            404,
        ),
        ("not the API", "GET", "/metrics".to_string(), 404),
        (
            "undeclared signal",
            "POST",
            stack.path("w/signal/steal"),
            404,
        ),
        (
            "undeclared query",
            "POST",
            stack.path("w/query/__stack_trace"),
            404,
        ),
        (
            "undeclared update",
            "POST",
            stack.path("w/update/steal"),
            404,
        ),
    ];
    for (what, method, path, want) in &forbidden {
        let (status, problem) = stack.call(method, path, t(), Some(&json!({}))).await;
        assert_eq!(status, *want, "{what}: {problem}");
        assert_eq!(problem["status"], *want, "{what}: {problem}");
    }
    for (what, body) in [
        (
            "a workflow not in the manifest",
            start_body("w", "echo", &stack.queue, &json!({}), "r"),
        ),
        (
            "another task queue",
            start_body("w", "order", "elsewhere", &json!({}), "r"),
        ),
        ("a cron schedule", {
            let mut b = start_body("w", "order", &stack.queue, &json!({}), "r");
            b["cronSchedule"] = json!("* * * * *");
            b
        }),
    ] {
        let (status, problem) = stack.call("POST", &stack.path("w"), t(), Some(&body)).await;
        assert!(matches!(status, 403 | 404), "{what}: {status} {problem}");
    }
    assert_eq!(
        stack.workflow_calls(),
        before,
        "a refused request reached Temporal"
    );
    // The token tried above on other requests was not used up: its own request is let through
    // (to the describe that finds no such run).
    let (status, problem) = stack
        .call("POST", &signal_a, Auth::Raw(for_a), Some(&json!({})))
        .await;
    assert_eq!(status, 404, "{problem}");

    // A run of a type the edge may not use: only the describe that finds out reaches Temporal.
    let (status, _) = stack
        .direct(
            "POST",
            &stack.path("internal-echo"),
            Some(&start_body(
                "internal-echo",
                "echo",
                &stack.queue,
                &json!({"message": "x"}),
                "r-echo",
            )),
        )
        .await;
    assert_eq!(status, 200);
    let before = stack.workflow_calls().len();
    for path in [
        "internal-echo/signal/approve",
        "internal-echo/query/status",
        "internal-echo/cancel",
        "internal-echo",
    ] {
        let method = if path == "internal-echo" {
            "GET"
        } else {
            "POST"
        };
        let (status, problem) = stack
            .call(method, &stack.path(path), t(), Some(&json!({})))
            .await;
        assert_eq!(status, 404, "{path}: {problem}");
    }
    let after = stack.workflow_calls();
    assert!(
        after[before..]
            .iter()
            .all(|m| m == "DescribeWorkflowExecution"),
        "{:?}",
        &after[before..]
    );

    // Rotation of the edge's key: a token from a key added to the JWKS works without a restart.
    let next = EdgeKey::new("edge-2");
    let early = next.token(json!({}));
    assert_eq!(
        stack.call("GET", &stack.path("x"), early, None).await.0,
        401
    );
    std::fs::write(stack.dir.path().join("jwks.json"), jwks(&[key, &next])).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = stack
        .call("GET", &stack.path("x"), next.token(json!({})), None)
        .await;
    assert_eq!(status, 404, "the new key's token was refused: {body}");
    assert_eq!(
        stack
            .call("GET", &stack.path("x"), key.token(json!({})), None)
            .await
            .0,
        404
    );
    assert!(stack.gateway.logs().contains("gateway keys loaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_answer_as_temporals_http_api_does_with_the_callers_identity() {
    let stack = Stack::up("gw-round").await;
    let _worker = stack.worker().await;
    let t = || stack.key.token(json!({"sub": "ada", "rid": "edge-req-1"}));
    // Two orders (an order id is recorded once), one through each door.
    let (input, input_direct) = (large_order("o-2"), large_order("o-2-direct"));

    // Start: the same call through the gateway and straight to the HTTP API answer alike.
    let via = stack
        .call(
            "POST",
            &stack.path("gw-1"),
            t(),
            Some(&start_body(
                "gw-1",
                "order",
                &stack.queue,
                &input,
                "same-request",
            )),
        )
        .await;
    let direct = stack
        .direct(
            "POST",
            &stack.path("direct-1"),
            Some(&start_body(
                "direct-1",
                "order",
                &stack.queue,
                &input_direct,
                "same-request",
            )),
        )
        .await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?} {direct:?}");
    assert_eq!(shape(&via.1), shape(&direct.1));
    assert_eq!(via.1["status"], "WORKFLOW_EXECUTION_STATUS_RUNNING");
    let run_id = via.1["runId"].as_str().unwrap().to_string();

    // Already started: 409 with the running run's id, in the HTTP API's error shape.
    let again = stack
        .call(
            "POST",
            &stack.path("gw-1"),
            t(),
            Some(&start_body(
                "gw-1",
                "order",
                &stack.queue,
                &input,
                "another",
            )),
        )
        .await;
    let again_direct = stack
        .direct(
            "POST",
            &stack.path("direct-1"),
            Some(&start_body(
                "direct-1",
                "order",
                &stack.queue,
                &input_direct,
                "another",
            )),
        )
        .await;
    assert_eq!((again.0, again_direct.0), (409, 409));
    assert_eq!(shape(&again.1), shape(&again_direct.1));
    assert_eq!(again.1["code"], 6);
    assert_eq!(again.1["details"][0]["runId"], run_id.as_str());

    // Query: the order waits for an approver.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (via, direct) = loop {
        let via = stack
            .call(
                "POST",
                &stack.path("gw-1/query/status"),
                t(),
                Some(&json!({"query": {}})),
            )
            .await;
        let direct = stack
            .direct(
                "POST",
                &stack.path("direct-1/query/status"),
                Some(&json!({"query": {}})),
            )
            .await;
        let step = |r: &(u16, Value)| {
            r.1["queryResult"]["payloads"]
                .get(0)
                .map(decode_payload)
                .map(|s| s["step"].clone())
        };
        if step(&via) == Some(json!("awaiting_approval"))
            && step(&direct) == Some(json!("awaiting_approval"))
        {
            break (via, direct);
        }
        assert!(
            Instant::now() < deadline,
            "never awaiting approval: {via:?} {direct:?}\n{}\n{}",
            last_event(&stack, "gw-1"),
            last_event(&stack, "direct-1")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(shape(&via.1), shape(&direct.1));

    // Signal: reject, with the caller's identity whatever the body says.
    let signal = json!({"input": {"payloads": [json_payload(&json!({"approver": "ada", "reason": "no"}))]},
                        "identity": "someone-else", "requestId": "sig-1", "header": {"fields": {}}});
    let via = stack
        .call(
            "POST",
            &stack.path("gw-1/signal/reject"),
            t(),
            Some(&signal),
        )
        .await;
    let direct = stack
        .direct("POST", &stack.path("direct-1/signal/reject"), Some(&signal))
        .await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?}");
    assert_eq!(shape(&via.1), shape(&direct.1));

    // The close-event long poll: the rejected order fails.
    let close = |id: &str| {
        stack.path(&format!("{id}/history?historyEventFilterType=HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT&waitNewEvent=true"))
    };
    let via = stack.call("GET", &close("gw-1"), t(), None).await;
    let direct = stack.direct("GET", &close("direct-1"), None).await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?}");
    assert_eq!(
        via.1["history"]["events"][0]["eventType"], "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED",
        "{via:?}"
    );
    assert_eq!(shape(&via.1), shape(&direct.1));

    // Describe: the caller is in the memo and search attributes, from the token.
    let via = stack.call("GET", &stack.path("gw-1"), t(), None).await;
    let direct = stack.direct("GET", &stack.path("direct-1"), None).await;
    assert_eq!((via.0, direct.0), (200, 200));
    assert_eq!(shape(&via.1), shape(&direct.1));
    let info = &via.1["workflowExecutionInfo"];
    assert_eq!(
        decode_payload(&info["memo"]["fields"]["edge_subject"]),
        "ada"
    );
    assert_eq!(
        decode_payload(&info["memo"]["fields"]["edge_request_id"]),
        "edge-req-1"
    );
    assert_eq!(
        decode_payload(&info["searchAttributes"]["indexedFields"]["EdgeRequestId"]),
        "edge-req-1"
    );
    let events = crate::common::history(&stack.server.address(), "gw-1");
    let started = &events[0]["workflowExecutionStartedEventAttributes"];
    assert_eq!(started["identity"], "edge:ada");
    let signaled = events
        .iter()
        .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED")
        .unwrap();
    assert_eq!(
        signaled["workflowExecutionSignaledEventAttributes"]["identity"],
        "edge:ada"
    );

    // Cancel, and the canceled run's close event.
    for (id, direct) in [("gw-2", false), ("direct-2", true)] {
        let body = start_body(id, "order", &stack.queue, &large_order(id), id);
        let started = if direct {
            stack.direct("POST", &stack.path(id), Some(&body)).await
        } else {
            stack.call("POST", &stack.path(id), t(), Some(&body)).await
        };
        assert_eq!(started.0, 200);
    }
    let cancel = json!({"identity": "x", "requestId": "c-1", "reason": "changed my mind"});
    let via = stack
        .call("POST", &stack.path("gw-2/cancel"), t(), Some(&cancel))
        .await;
    let direct = stack
        .direct("POST", &stack.path("direct-2/cancel"), Some(&cancel))
        .await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?}");
    assert_eq!(shape(&via.1), shape(&direct.1));
    // The order may take a moment to wind down: loop with the page token, as the edge does.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut page = String::new();
    let event = loop {
        let path = if page.is_empty() {
            close("gw-2")
        } else {
            format!("{}&nextPageToken={}", close("gw-2"), urlencode(&page))
        };
        let via = stack.call("GET", &path, t(), None).await;
        assert_eq!(via.0, 200, "{via:?}");
        if let Some(event) = via.1["history"]["events"].get(0) {
            break event.clone();
        }
        page = via.1["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(Instant::now() < deadline, "the canceled run never closed");
    };
    let event_type = event["eventType"].as_str().unwrap_or_default();
    assert!(
        matches!(
            event_type,
            "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED" | "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
        ),
        "{event}"
    );

    // Update: a valid `reject` through each door, once the orders wait for a decision.
    for (id, direct) in [("gw-4", false), ("direct-4", true)] {
        let body = start_body(id, "order", &stack.queue, &large_order(id), id);
        let started = if direct {
            stack.direct("POST", &stack.path(id), Some(&body)).await
        } else {
            stack.call("POST", &stack.path(id), t(), Some(&body)).await
        };
        assert_eq!(started.0, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let query = json!({"query": {}});
            let path = stack.path(&format!("{id}/query/status"));
            let answer = stack.direct("POST", &path, Some(&query)).await;
            let step = answer.1["queryResult"]["payloads"]
                .get(0)
                .map(decode_payload)
                .map(|s| s["step"].clone());
            if step == Some(json!("awaiting_approval")) {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never waits: {answer:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // An invalid decision is refused alike through each door: the worker's InvalidInput
    // failure, the cause of the update's failure, with its details in full payload form (what
    // the edge's `refusal` reads).
    let invalid = |id: &str| {
        json!({"waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
               "request": {"meta": {"updateId": format!("bad-{id}"), "identity": "someone-else"},
                           "input": {"args": {"payloads": [json_payload(&json!({"reason": "no"}))]}}}})
    };
    let via = stack
        .call(
            "POST",
            &stack.path("gw-4/update/reject"),
            t(),
            Some(&invalid("gw-4")),
        )
        .await;
    let direct = stack
        .direct(
            "POST",
            &stack.path("direct-4/update/reject"),
            Some(&invalid("direct-4")),
        )
        .await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?} {direct:?}");
    assert_eq!(shape(&via.1), shape(&direct.1));
    let typed = &via.1["outcome"]["failure"]["cause"];
    assert_eq!(
        typed["applicationFailureInfo"]["type"], "InvalidInput",
        "{via:?}"
    );
    assert_eq!(
        decode_payload(&typed["applicationFailureInfo"]["details"]["payloads"][0]),
        json!({"errors": [{"path": "$.approver", "message": "is required"}]}),
        "{via:?}"
    );
    let update = |id: &str| {
        json!({"waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
               "request": {"meta": {"updateId": format!("u-{id}"), "identity": "someone-else"},
                           "input": {"args": {"payloads": [json_payload(&json!({"approver": "ada", "reason": "no"}))]}}}})
    };
    let via = stack
        .call(
            "POST",
            &stack.path("gw-4/update/reject"),
            t(),
            Some(&update("gw-4")),
        )
        .await;
    let direct = stack
        .direct(
            "POST",
            &stack.path("direct-4/update/reject"),
            Some(&update("direct-4")),
        )
        .await;
    assert_eq!((via.0, direct.0), (200, 200), "{via:?} {direct:?}");
    assert!(via.1["outcome"]["success"].is_object(), "{via:?}");
    assert_eq!(shape(&via.1), shape(&direct.1));
    let accepted = crate::common::history(&stack.server.address(), "gw-4")
        .into_iter()
        .find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED")
        .expect("the update was accepted");
    assert_eq!(
        accepted["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["meta"]["identity"],
        "edge:ada"
    );

    // Errors keep the HTTP API's status and shape.
    let missing = stack
        .call("GET", &stack.path("no-such-run"), t(), None)
        .await;
    let missing_direct = stack.direct("GET", &stack.path("no-such-run"), None).await;
    assert_eq!((missing.0, missing_direct.0), (404, 404));
    assert_eq!(shape(&missing.1), shape(&missing_direct.1));
    let bad = stack
        .call(
            "POST",
            &stack.path("gw-3"),
            t(),
            Some(&json!({"workflowType": {"name": "order"}, "bogus": 1})),
        )
        .await;
    let bad_direct = stack
        .direct(
            "POST",
            &stack.path("gw-3"),
            Some(&json!({"workflowType": {"name": "order"}, "bogus": 1})),
        )
        .await;
    assert_eq!((bad.0, bad_direct.0), (400, 400));
    assert_eq!(shape(&bad.1), shape(&bad_direct.1));

    // The gateway's log names the caller and the edge's request id.
    let logs = stack.gateway.logs();
    assert!(
        logs.contains("edge-req-1") && logs.contains("ada"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_carries_the_api_key_and_namespace_and_a_rotated_key_is_used() {
    let stack = Stack::up("gw-creds").await;
    let t = || stack.key.token(json!({}));
    let body = start_body(
        "cred-1",
        "order",
        &stack.queue,
        &large_order("o-3"),
        "cred-1",
    );
    assert_eq!(
        stack
            .call("POST", &stack.path("cred-1"), t(), Some(&body))
            .await
            .0,
        200
    );
    assert_eq!(
        stack.call("GET", &stack.path("cred-1"), t(), None).await.0,
        200
    );

    std::fs::write(stack.dir.path().join("api-key"), "key-two\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack.gateway.logs().contains("Temporal API key reloaded") {
        assert!(Instant::now() < deadline, "{}", stack.gateway.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = stack.proxy.calls().len();
    let signal = json!({"input": {"payloads": [json_payload(&json!({"approver": "ada"}))]}});
    assert_eq!(
        stack
            .call(
                "POST",
                &stack.path("cred-1/signal/approve"),
                t(),
                Some(&signal)
            )
            .await
            .0,
        200
    );

    let calls = stack.proxy.calls();
    let namespaced: Vec<_> = calls
        .iter()
        .filter(|c| c.method() != "GetSystemInfo")
        .collect();
    assert!(
        namespaced
            .iter()
            .any(|c| c.method() == "StartWorkflowExecution")
    );
    for call in &namespaced {
        assert_eq!(call.namespace.as_deref(), Some("default"), "{call:?}");
    }
    for call in &calls[..seen] {
        assert!(
            matches!(
                call.authorization.as_deref(),
                Some("Bearer key-one") | Some("Bearer key-two")
            ),
            "{call:?}"
        );
    }
    let after: Vec<_> = calls[seen..]
        .iter()
        .filter(|c| c.method() != "DescribeNamespace")
        .collect();
    assert_eq!(
        after.iter().map(|c| c.method()).collect::<Vec<_>>(),
        ["DescribeWorkflowExecution", "SignalWorkflowExecution"]
    );
    assert!(
        after
            .iter()
            .all(|c| c.authorization.as_deref() == Some("Bearer key-two")),
        "{after:?}"
    );

    // The ops endpoint counts requests by operation and status.
    let ops = stack.gateway.ops.clone();
    let (status, metrics) =
        tokio::task::spawn_blocking(move || http_get(&ops, "/metrics").unwrap())
            .await
            .unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("edgeflow_gateway_requests_total{operation=\"start\",status=\"200\"} 1"),
        "{metrics}"
    );
}

/// The last event of a run's history, for failure messages.
fn last_event(stack: &Stack, id: &str) -> String {
    crate::common::history(&stack.server.address(), id)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_long_poll_finish_then_exits_0() {
    let mut stack = Stack::up("gw-drain").await;
    let body = start_body(
        "drain-1",
        "order",
        &stack.queue,
        &large_order("o-4"),
        "drain-1",
    );
    assert_eq!(
        stack
            .call(
                "POST",
                &stack.path("drain-1"),
                stack.key.token(json!({})),
                Some(&body)
            )
            .await
            .0,
        200
    );

    let (http, url) = (stack.http.clone(), stack.gateway.url.clone());
    let poll = stack.path("drain-1/history?historyEventFilterType=HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT&waitNewEvent=true");
    let t = Auth::Raw(stack.key.bound("GET", &poll, b"", &json!({})));
    let in_flight = tokio::spawn(async move { send(&http, &url, "GET", &poll, t, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::common::signal(&stack.gateway.process.0, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        stack.gateway.process.0.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    // The run ends; the long poll gets its answer, then the gateway exits.
    let terminate = json!({"reason": "test over"});
    assert_eq!(
        stack
            .direct("POST", &stack.path("drain-1/terminate"), Some(&terminate))
            .await
            .0,
        200
    );
    let (status, answer) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["history"]["events"][0]["eventType"],
        "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"
    );
    let exited = tokio::task::block_in_place(|| {
        wait_exit(&mut stack.gateway.process.0, Duration::from_secs(10))
    });
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(0),
        "{}",
        stack.gateway.logs()
    );
    assert!(
        stack.gateway.logs().contains("drained"),
        "{}",
        stack.gateway.logs()
    );
}

/// Keys served at a URL: fetched at start, and a token from a key published later is accepted
/// without a restart (its unknown `kid` makes the gateway fetch the set again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_a_jwks_url_rotate_without_a_restart() {
    let server = tokio::task::spawn_blocking(temporal::shared).await.unwrap();
    let keys = MockServer::start().await;
    let (old, new) = (EdgeKey::new("url-1"), EdgeKey::new("url-2"));
    let publish = |set: String| {
        Mock::given(wiremock::matchers::path("/jwks.json"))
            .respond_with(ResponseTemplate::new(200).set_body_string(set))
    };
    publish(jwks(&[&old])).mount(&keys).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api-key"), "key-one\n").unwrap();
    let gateway = spawn_gateway_with(
        &server.address(),
        &unique_queue("gw-url"),
        dir.path(),
        &[(
            "EDGEFLOW__GATEWAY__JWKS_URL",
            format!("{}/jwks.json", keys.uri()),
        )],
    )
    .await;
    let http = reqwest::Client::new();
    let path = "/api/v1/namespaces/default/workflows/no-such-run";
    let (status, body) = send(&http, &gateway.url, "GET", path, old.token(json!({})), None).await;
    assert_eq!(status, 404, "the served key's token was refused: {body}");
    let (status, _) = send(&http, &gateway.url, "GET", path, new.token(json!({})), None).await;
    assert_eq!(status, 401, "a key not yet published was accepted");
    keys.reset().await;
    publish(jwks(&[&old, &new])).mount(&keys).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = send(&http, &gateway.url, "GET", path, new.token(json!({})), None).await;
    assert_eq!(
        status,
        404,
        "the new key's token was refused: {body}\n{}",
        gateway.logs()
    );
}
