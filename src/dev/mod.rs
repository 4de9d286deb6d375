//! `edgeflow dev`: the whole system on one machine, on embedded defaults.
//!
//! Starts a Temporal dev server persisting under `./var/` (or reuses one already answering on
//! `temporal.address`) and registers edgeflow's search attributes; serves the demo services and
//! the development token issuer; with `dev.edge_transport = "gateway"` (the default) runs
//! `edgeflow gateway` in this process, trusting a signing key it gives the edge; starts the edge
//! Worker in `wrangler dev` trusting that issuer and reaching Temporal through the gateway (or
//! straight through the dev server's HTTP API);
//! runs the worker in this process on the `dev` settings; prints where everything is (traces
//! included) and a ready-to-use token; and on Ctrl-C stops the worker (draining it) and then
//! every process it
//! started, and nothing else.

pub mod demo;
mod issuer;
pub mod server;
pub mod settings;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use temporalio_common::protos::temporal::api::enums::v1::IndexedValueType;
use temporalio_common::protos::temporal::api::operatorservice::v1::AddSearchAttributesRequest;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::telemetry::Telemetry;
use issuer::DevIssuer;
use settings::EdgeTransport;

pub use edgeflow_devserver::{CALLBACKS_ON_LOOPBACK, SEARCH_ATTRIBUTES};

/// A child process this command started; killed (TERM, then KILL) when dropped.
struct Owned {
    name: &'static str,
    child: Child,
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    eprintln!("[dev] stopped {}", self.name);
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("[dev] killed {}", self.name);
        }
    }
}

fn grpc_addr(settings: &Settings) -> anyhow::Result<SocketAddr> {
    let url = settings.temporal.address.endpoint(false);
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(7233);
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("127.0.0.1:{port}").parse())
        .context("temporal.address must be a loopback address for `edgeflow dev`")
}

fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// How often `edgeflow dev` starts the Temporal dev server when a start loses a port race.
const TEMPORAL_START_ATTEMPTS: u32 = 3;

/// The dev server `edgeflow dev` started; stopped cleanly (its database file stays consistent)
/// when dropped.
struct StartedTemporal(edgeflow_devserver::DevServer);

impl Drop for StartedTemporal {
    fn drop(&mut self) {
        self.0.stop(Duration::from_secs(10));
        eprintln!("[dev] stopped the Temporal dev server");
    }
}

/// Starts a Temporal dev server (edgeflow's one way, [`edgeflow_devserver`]) persisting under
/// `dev.var_dir`, unless one already answers on `temporal.address`.
fn ensure_temporal(settings: &Settings) -> anyhow::Result<Option<StartedTemporal>> {
    let dev = &settings.dev;
    let addr = grpc_addr(settings)?;
    if listening(addr) {
        eprintln!("[dev] reusing the Temporal server already listening on {addr}");
        return Ok(None);
    }
    std::fs::create_dir_all(&dev.var_dir)
        .with_context(|| format!("creating {}", dev.var_dir.display()))?;
    let log_path = dev.var_dir.join("temporal.log");
    // A log per run of `edgeflow dev`, not one growing forever.
    let _ = std::fs::remove_file(&log_path);
    eprintln!(
        "[dev] starting a Temporal dev server on {addr} (persisting to {}, log {})",
        temporal_db(settings).display(),
        log_path.display()
    );
    let mut options =
        edgeflow_devserver::Options::new(edgeflow_devserver::cli_path(Path::new(".")), log_path);
    options.ip = addr.ip();
    options.grpc_port = addr.port();
    options.http_port = dev.temporal_http_port;
    // The web UI is served from the CLI itself (no network needed): the banner points at it.
    options.ui_port = Some(dev.temporal_ui_port);
    options.db_file = Some(temporal_db(settings));
    options.namespace = settings.temporal.namespace.clone();
    options.attempts = TEMPORAL_START_ATTEMPTS;
    // The UI shows plaintext through the edge's codec server, which exists only where the edge
    // has keys (start_edge passes them when `[encryption]` has some); otherwise it would 404.
    if dev.start_edge && settings.encryption.enabled() {
        options.ui_codec_endpoint = Some(format!("http://127.0.0.1:{}/v1/codec", dev.edge_port));
    }
    let server = edgeflow_devserver::DevServer::start(options)?;
    for lost in server.lost_races() {
        eprintln!("[dev] {lost}\n[dev] it lost a race for a port; starting it again");
    }
    Ok(Some(StartedTemporal(server)))
}

/// The dev server's SQLite file, under `dev.var_dir`.
fn temporal_db(settings: &Settings) -> PathBuf {
    settings.dev.var_dir.join("temporal.db")
}

/// Registers the edge's search attributes on a reused server (a started one has them already).
async fn register_search_attributes(settings: &Settings) -> anyhow::Result<()> {
    let (connection, _) =
        crate::connection::connect(&settings.temporal, "edgeflow-dev", None).await?;
    let request = AddSearchAttributesRequest {
        search_attributes: SEARCH_ATTRIBUTES
            .iter()
            .map(|a| {
                let kind = format!("INDEXED_VALUE_TYPE_{}", a.kind.to_uppercase());
                IndexedValueType::from_str_name(&kind)
                    .map(|kind| (a.name.to_string(), kind as i32))
                    .with_context(|| format!("{}: no search attribute type {kind}", a.name))
            })
            .collect::<anyhow::Result<_>>()?,
        namespace: settings.temporal.namespace.clone(),
    };
    match connection
        .operator_service()
        .add_search_attributes(temporalio_client::tonic::Request::new(request))
        .await
    {
        Ok(_) => Ok(()),
        Err(status) if status.code() == temporalio_client::tonic::Code::AlreadyExists => Ok(()),
        Err(status) if status.message().contains("already") => Ok(()),
        Err(status) => bail!("registering search attributes: {}", status.message()),
    }
}

fn issuer(settings: &Settings) -> anyhow::Result<DevIssuer> {
    DevIssuer::load_or_create(
        &settings.dev.var_dir,
        format!("http://127.0.0.1:{}", settings.dev.issuer_port),
        settings.dev.token_audience.clone(),
    )
}

/// `edgeflow dev token`: a token from the same key the running dev stack publishes.
pub fn token(
    settings: &Settings,
    subject: &str,
    email: Option<&str>,
    roles: &[String],
    ttl_secs: u64,
) -> anyhow::Result<String> {
    issuer(settings)?.mint(subject, email, roles, ttl_secs)
}

async fn bind(port: u16, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("{what}: port {port} is taken (change it under [dev])"))
}

/// `edgeflow dev services`: the demo services alone, until a signal.
pub async fn serve_demo_services(
    settings: &Settings,
    port: Option<u16>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let failure = (*settings.dev.demo_failure).clone();
    let listener = bind(
        port.unwrap_or(settings.dev.demo_services_port),
        "demo services",
    )
    .await?;
    // One line a supervisor (or the benchmark harness) can wait for, with the port picked.
    println!(
        "demo services listening on http://{} (failure mode: {})",
        listener.local_addr()?,
        settings.dev.demo_failure
    );
    serve_demo(listener, failure, stop).await;
    Ok(())
}

async fn serve_demo(
    listener: tokio::net::TcpListener,
    failure: demo::Failure,
    stop: CancellationToken,
) {
    let _ = axum::serve(listener, demo::router(failure))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

/// The edge's key for signing gateway tokens: a P-256 key kept in `<var_dir>/edge-gateway.pk8`
/// (made on first use). Returns the private JWK the edge gets as `GATEWAY_SIGNING_KEY`, and the
/// JWKS with its public half the gateway trusts.
fn edge_signing_key(var_dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let path = var_dir.join("edge-gateway.pk8");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("generating the edge's gateway key"))?;
            std::fs::write(&path, doc.as_ref())
                .with_context(|| format!("writing {}", path.display()))?;
            doc.as_ref().to_vec()
        }
    };
    let unusable = || {
        anyhow::anyhow!(
            "{} is not a P-256 key made by edgeflow dev; delete it to make a new one",
            path.display()
        )
    };
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|_| unusable())?;
    // ring writes P-256 PKCS#8 documents in one fixed layout, the private scalar at bytes
    // 36..68 (after the algorithm identifiers and the `04 20` octet-string header). A JWK
    // needs it as `d`; the prefix is checked, so any other layout is refused, not misread.
    const PREFIX: [u8; 36] = [
        0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30,
        0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
    ];
    if pkcs8.len() < 68 || pkcs8[..36] != PREFIX {
        return Err(unusable());
    }
    let point = pair.public_key().as_ref();
    let digest = ring::digest::digest(&ring::digest::SHA256, point);
    let kid: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (x, y) = (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]));
    let private = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "x": x, "y": y, "d": B64URL.encode(&pkcs8[36..68]),
    });
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": x, "y": y,
    }]});
    Ok((private.to_string(), jwks.to_string()))
}

/// How the edge reaches Temporal: the variables that say so.
/// A P-256 key pair for this session's edge activities: the private half in
/// `<var>/edge-activities.pem` (made anew on every start, readable by its owner only) for the
/// worker, whose `[edge_activities]` now point at the edge this command starts; returns the
/// public half as the JWKS the edge takes in `ACTIVITY_KEYS`.
fn edge_activities_session_key(settings: &mut Settings) -> anyhow::Result<String> {
    use edgeflow_activities::edge::token::{SigningKey, generate_pem};
    use std::os::unix::fs::OpenOptionsExt;
    let pem = generate_pem().map_err(|e| anyhow::anyhow!(e))?;
    let kid = "dev-session".to_string();
    let jwk = SigningKey::from_pem(pem.as_bytes(), kid.clone())
        .map_err(|e| anyhow::anyhow!("the session key {e}"))?
        .public_jwk();
    std::fs::create_dir_all(&settings.dev.var_dir)
        .with_context(|| format!("creating {}", settings.dev.var_dir.display()))?;
    let file = settings.dev.var_dir.join("edge-activities.pem");
    let _ = std::fs::remove_file(&file);
    std::io::Write::write_all(
        &mut std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("writing {}", file.display()))?,
        pem.as_bytes(),
    )?;
    let edge = &mut settings.edge_activities;
    edge.url = format!("http://127.0.0.1:{}", settings.dev.edge_port);
    edge.key_id = Some(kid);
    edge.signing_key_file = Some(file);
    Ok(serde_json::json!({ "keys": [jwk] }).to_string())
}

fn edge_temporal_vars(
    settings: &Settings,
    gateway: Option<(SocketAddr, String)>,
) -> Vec<(&'static str, String)> {
    match gateway {
        Some((addr, signing_key)) => vec![
            ("TEMPORAL_TRANSPORT", "gateway".to_string()),
            ("TEMPORAL_HTTP_URL", format!("http://{addr}")),
            ("GATEWAY_SIGNING_KEY", signing_key),
            ("GATEWAY_AUDIENCE", settings.gateway.audience.clone()),
            ("GATEWAY_ISSUER", settings.gateway.issuer.clone()),
        ],
        None => vec![
            ("TEMPORAL_TRANSPORT", "temporal_http".to_string()),
            (
                "TEMPORAL_HTTP_URL",
                format!("http://127.0.0.1:{}", settings.dev.temporal_http_port),
            ),
        ],
    }
}

/// The key of the edge's completion-callback tokens, made once per var dir (runs started before a
/// restart keep callbacks the edge can still verify).
/// A random 32-byte secret of the dev edge's, base64 after `prefix`, kept in `var_dir/file` so that
/// runs started in an earlier session still verify (callback tokens) or keep their ids (the caller
/// hash key).
fn edge_secret(var_dir: &std::path::Path, file: &str, prefix: &str) -> anyhow::Result<String> {
    let path = var_dir.join(file);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        return Ok(secret.trim().to_string());
    }
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| anyhow::anyhow!("generating the edge's {file}"))?;
    let secret = format!(
        "{prefix}{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key)
    );
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret)
}

/// Starts the edge Worker in `wrangler dev`, trusting the dev issuer and signing secrets; with
/// `callbacks`, every start carries a completion callback to the edge (the Temporal server must
/// allow it: the one `edgeflow dev` starts does).
async fn start_edge(
    settings: &Settings,
    temporal_vars: Vec<(&'static str, String)>,
    callbacks: bool,
    activity_keys: Option<String>,
) -> anyhow::Result<Owned> {
    let dev = &settings.dev;
    let edge_dir = PathBuf::from("edge");
    let wrangler = edge_dir.join("node_modules/wrangler/bin/wrangler.js");
    if !wrangler.exists() {
        bail!(
            "{} is missing: run scripts/setup (or set EDGEFLOW__DEV__START_EDGE=false)",
            wrangler.display()
        );
    }
    let var = std::fs::canonicalize(&dev.var_dir)?;
    let secrets: Vec<String> = settings
        .webhooks
        .endpoints
        .get(&settings.workflows.order.completion_webhook)
        .map(|e| {
            e.secrets
                .iter()
                .map(|s| secrecy::ExposeSecret::expose_secret(s).to_string())
                .collect()
        })
        .unwrap_or_default();
    let env_file = var.join("edge.env");
    let mut vars = vec![
        ("ENVIRONMENT", "development".to_string()),
        ("TEMPORAL_NAMESPACE", settings.temporal.namespace.clone()),
        (
            "OIDC_ISSUER",
            format!("http://127.0.0.1:{}", dev.issuer_port),
        ),
        ("OIDC_AUDIENCE", dev.token_audience.clone()),
        ("OIDC_ALGORITHMS", "ES256".to_string()),
        ("WEBHOOK_SECRETS", secrets.join(" ")),
    ];
    vars.extend(temporal_vars);
    if let Some(jwks) = activity_keys {
        // The worker's session key for edge activities; the audience is the edge's own origin,
        // the worker's default for `edge_activities.audience`.
        vars.push(("ACTIVITY_KEYS", jwks));
        vars.push((
            "EDGE_ACTIVITY_AUDIENCE",
            format!("http://127.0.0.1:{}", dev.edge_port),
        ));
    }
    if let Some(keys) = settings
        .encryption
        .read_keys()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
    {
        // The worker's keys, so the edge encrypts and decrypts as it does, and the dev UI (no
        // login) may decode through the edge's codec server without a token.
        let by_id: std::collections::BTreeMap<_, _> = (keys.by_id.iter())
            .map(|(id, k)| {
                (
                    id,
                    base64::engine::general_purpose::STANDARD
                        .encode(secrecy::ExposeSecret::expose_secret(k)),
                )
            })
            .collect();
        vars.push(("ENCRYPTION_KEYS", serde_json::to_string(&by_id)?));
        vars.push(("ENCRYPTION_ACTIVE_KEY_ID", keys.active_key_id));
        // Encrypted payloads need callers hashed wherever Temporal keeps them in plaintext.
        vars.push((
            "CALLER_HASH_KEY",
            edge_secret(&var, "edge-caller-hash.secret", "")?,
        ));
        vars.push((
            "CODEC_ANONYMOUS_ORIGINS",
            format!("http://127.0.0.1:{}", dev.temporal_ui_port),
        ));
    }
    if callbacks {
        vars.push((
            "CALLBACK_URL",
            format!(
                "http://127.0.0.1:{}/v1/hooks/temporal-callback",
                dev.edge_port
            ),
        ));
        vars.push((
            "CALLBACK_SECRETS",
            edge_secret(&var, "edge-callback.secret", "whsec_")?,
        ));
    }
    let text: String = vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(&env_file, text).with_context(|| format!("writing {}", env_file.display()))?;
    let log_path = var.join("edge.log");
    let log = std::fs::File::create(&log_path)?;
    eprintln!(
        "[dev] starting the edge Worker in wrangler dev on 127.0.0.1:{} (log {})",
        dev.edge_port,
        log_path.display()
    );
    let child = Command::new("node")
        .arg(wrangler.strip_prefix(&edge_dir).unwrap_or(&wrangler))
        .args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &dev.edge_port.to_string(),
        ])
        .args(["--env-file", &env_file.display().to_string()])
        .args([
            "--persist-to",
            &var.join("edge-state").display().to_string(),
        ])
        .arg("--show-interactive-dev-session=false")
        .current_dir(&edge_dir)
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting `node` for the edge Worker (is Node.js installed?)")?;
    let mut owned = Owned {
        name: "edge Worker (wrangler dev)",
        child,
    };
    let url = format!("http://127.0.0.1:{}/healthz", dev.edge_port);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(owned);
        }
        if let Some(status) = owned.child.try_wait()? {
            // The log's end says why; the folder it is in may be gone by the time anyone looks.
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "the edge Worker exited with {status}; {} ends with:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the edge Worker did not answer {url} within 90 s; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Where the worker's spans go, for the banner.
fn traces_go_to(telemetry: &crate::telemetry::settings::TelemetrySettings) -> String {
    use crate::telemetry::settings::OtlpProtocol;
    match &telemetry.otlp_endpoint {
        Some(endpoint) => match telemetry.otlp_protocol {
            OtlpProtocol::Grpc => format!("OTLP/gRPC to {endpoint}"),
            OtlpProtocol::HttpProtobuf => format!("OTLP/HTTP to {endpoint}"),
        },
        None => "not exported; set EDGEFLOW__TELEMETRY__OTLP_ENDPOINT to a collector \
                 (e.g. http://127.0.0.1:4317). Trace ids are on every activity log line"
            .to_string(),
    }
}

pub async fn run(
    settings: Settings,
    telemetry: &Telemetry,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let dev = settings.dev.clone();
    let failure = (*dev.demo_failure).clone();
    let temporal = tokio::task::block_in_place(|| ensure_temporal(&settings))?;
    register_search_attributes(&settings).await?;

    let background = CancellationToken::new();
    let demo_listener = bind(dev.demo_services_port, "demo services").await?;
    tokio::spawn(serve_demo(demo_listener, failure, background.clone()));
    let issuer = Arc::new(issuer(&settings)?);
    issuer
        .clone()
        .serve(
            bind(dev.issuer_port, "token issuer").await?,
            background.clone(),
        )
        .await;
    // The gateway, in this process, with the worker's connection settings.
    let mut settings = settings;
    let gateway = match dev.edge_transport {
        EdgeTransport::Gateway => {
            let (signing_key, jwks) = edge_signing_key(&dev.var_dir)?;
            let jwks_file = dev.var_dir.join("edge-gateway-jwks.json");
            std::fs::write(&jwks_file, jwks)
                .with_context(|| format!("writing {}", jwks_file.display()))?;
            settings.gateway.jwks_file = Some(jwks_file);
            settings.gateway.jwks_url = None;
            let (connection, _) =
                crate::connection::connect(&settings.temporal, "edgeflow-dev-gateway", None)
                    .await?;
            let running = crate::gateway::start(
                &settings,
                connection,
                crate::gateway::metrics::GatewayMetrics::new(),
                background.clone(),
            )
            .await?;
            Some((running.addr, signing_key))
        }
        EdgeTransport::TemporalHttp => None,
    };
    let gateway_line = match &gateway {
        Some((addr, _)) => format!("http://{addr} (the edge reaches Temporal through it)"),
        None => "(not started: dev.edge_transport = \"temporal_http\")".to_string(),
    };
    // A reused server may not allow callbacks to the edge: then the edge relies on the worker's
    // webhook and on long-polling the close event.
    let callbacks = temporal.is_some();
    if !callbacks {
        eprintln!(
            "[dev] completion callbacks off: the reused server may not allow them ({CALLBACKS_ON_LOOPBACK})"
        );
    }
    // Edge activities run at the edge this command starts, unless the settings point elsewhere.
    let activity_keys = if dev.start_edge && !settings.edge_activities.enabled() {
        Some(edge_activities_session_key(&mut settings)?)
    } else {
        None
    };
    let edge = if dev.start_edge {
        Some(
            start_edge(
                &settings,
                edge_temporal_vars(&settings, gateway),
                callbacks,
                activity_keys,
            )
            .await?,
        )
    } else {
        None
    };

    let token = issuer.mint(
        "dev-user",
        Some("dev-user@edgeflow.localhost"),
        &["customer".to_string()],
        12 * 3600,
    )?;
    let edge_url = format!("http://127.0.0.1:{}", dev.edge_port);
    eprintln!(
        "\n\
         [dev] edgeflow is up.\n\
         [dev]   edge (the API):   {}\n\
         [dev]   Temporal UI:      http://127.0.0.1:{}{}\n\
         [dev]   gateway:          {gateway_line}\n\
         [dev]   worker ops:       http://{}/readyz  /metrics\n\
         [dev]   traces:           {}\n\
         [dev]   demo services:    http://127.0.0.1:{} (failure mode: {}; /_stats counts every call)\n\
         [dev] A customer token (12 h; `edgeflow dev token --role approver` mints others):\n\
         [dev]   export TOKEN={token}\n\
         [dev] Try it (another terminal):\n\
         [dev]   target/debug/edgeflow start order --input @examples/order.json --wait\n\
         [dev]   curl -s -X POST {edge_url}/v1/workflows/order -H \"Authorization: Bearer $TOKEN\" \\\n\
         [dev]        -H 'Prefer: wait=10' -H 'Content-Type: application/json' --data @examples/order-web.json\n\
         [dev] Ctrl-C stops everything this command started.\n",
        if edge.is_some() {
            edge_url.clone()
        } else {
            "(not started: dev.start_edge = false)".to_string()
        },
        dev.temporal_ui_port,
        if temporal.is_some() {
            ""
        } else {
            " (of the reused server, if it serves one)"
        },
        settings.ops.listen,
        traces_go_to(&settings.telemetry),
        dev.demo_services_port,
        dev.demo_failure,
    );

    let result = crate::worker::run(settings, telemetry, stop).await;
    background.cancel();
    drop(edge);
    drop(temporal);
    result
}
