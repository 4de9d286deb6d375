//! `edgeflow gateway`: the edge Worker's door to any Temporal cluster, Temporal Cloud included.
//!
//! A Worker can't speak gRPC and Temporal Cloud serves no workflow HTTP API, so the gateway
//! serves, over HTTP/1.1, exactly the operations the edge uses in the shape of Temporal's HTTP API
//! (paths under `/api/v1/namespaces/{ns}/…`, protojson bodies), and makes each one as a gRPC call
//! with the `[temporal]` connection: TLS, mTLS, API keys that rotate without a restart. The edge
//! holds no Temporal credential, only a key to sign one short-lived token per request.
//!
//! - [`routes`]: the operations offered, the policy (the edge's manifest), the error shapes.
//! - [`token`]: verifying the edge's ES256 tokens (audience, issuer, lifetime, replays).
//! - [`keys`]: the edge's public keys, from a JWKS file or URL, reloaded without a restart.
//! - [`protojson`]: Temporal's messages as the HTTP API's JSON.
//! - [`metrics`]: request counts and latency on `/metrics`.
//! - [`settings`]: the `[gateway]` section, and its checks.
//!
//! Start-up: ops endpoints first (`/readyz` says why it is not ready yet), the keys (a bad key
//! source stops it here), the connection (retried until it succeeds or a signal arrives), then
//! the listener. On SIGTERM or SIGINT it stops accepting, lets in-flight requests finish for up
//! to `shutdown.grace_period_secs` (a history long poll answers within ~20 s), and exits 0.

pub mod keys;
pub mod metrics;
pub mod protojson;
pub mod routes;
pub mod settings;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use temporalio_client::Connection;
use tokio_util::sync::CancellationToken;

use crate::ops::{self, Readiness};
use crate::settings::Settings;
use metrics::GatewayMetrics;
use routes::{Contract, Gateway};

/// The program name in the gateway's identity (`edgeflow-gateway-<pid>@<host>` unless
/// `worker.identity`).
pub const PROGRAM: &str = "edgeflow-gateway";

/// A gateway serving on its listener until the `stop` it was started with.
pub struct Running {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `gateway.listen` and serves with `connection` until `stop`; also keeps the edge's keys
/// fresh. `edgeflow dev` runs it beside the worker, sharing the worker's connection settings.
pub async fn start(
    settings: &Settings,
    connection: Connection,
    metrics: Arc<GatewayMetrics>,
    stop: CancellationToken,
) -> anyhow::Result<Running> {
    let g = &settings.gateway;
    let keys = keys::KeySource::load(g).await?;
    tokio::spawn(
        keys.clone()
            .watch(Duration::from_secs(g.keys_refresh_secs), stop.clone()),
    );
    let task_queue = settings
        .workflow_task_queue()
        .context("no configured task queue runs workflows: the gateway starts workflows on it")?;
    let gateway = Arc::new(Gateway {
        namespace: settings.temporal.namespace.clone(),
        contract: Contract::from_catalog(task_queue),
        verifier: token::Verifier::new(g, keys),
        connection,
        max_body_bytes: g.max_body_bytes,
        call_timeout: Duration::from_secs(g.call_timeout_secs),
        metrics,
    });
    let listen = g.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("gateway.listen: cannot bind {listen}"))?;
    let addr = listener.local_addr()?;
    let app = routes::router(gateway);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "gateway server stopped");
        }
    });
    tracing::info!(%addr, namespace = %settings.temporal.namespace, "gateway listening");
    Ok(Running { addr, task })
}

/// `edgeflow gateway`: runs until a signal, then drains.
pub async fn run(settings: Settings, stop: CancellationToken) -> anyhow::Result<()> {
    let metrics = GatewayMetrics::new();
    let readiness = Readiness::new("starting");
    let ops_stop = CancellationToken::new();
    // Its own request metrics only: the worker's activity metrics are the worker's to serve.
    let request_metrics = metrics.clone();
    let (ops_addr, ops_task) = ops::serve(
        settings.ops.listen,
        readiness.clone(),
        vec![Box::new(move || request_metrics.render())],
        None,
        ops_stop.clone(),
    )
    .await?;
    tracing::info!(%ops_addr, "ops endpoints listening (/healthz, /readyz, /metrics)");

    let identity = crate::connection::identity(&settings, PROGRAM);
    let Some((connection, client_cert)) =
        crate::connection::connect_until_stopped(&settings.temporal, &identity, &readiness, &stop)
            .await
    else {
        ops_stop.cancel();
        let _ = ops_task.await;
        tracing::info!("stopped before connecting to Temporal");
        return Ok(());
    };
    let background = CancellationToken::new();
    tokio::spawn(crate::connection::watch_credentials(
        settings.temporal.clone(),
        connection.clone(),
        client_cert,
        background.clone(),
    ));
    tokio::spawn(crate::connection::follow_readiness(
        connection.clone(),
        settings.temporal.clone(),
        Duration::from_secs(settings.worker.readiness_check_secs),
        readiness.clone(),
        || None,
        background.clone(),
    ));

    let serving = CancellationToken::new();
    let running = start(&settings, connection, metrics, serving.clone()).await?;
    let mut task = running.task;
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = &mut task => {
            background.cancel();
            anyhow::bail!("the gateway's server stopped by itself");
        }
    }
    readiness.set_not_ready("shutting down");
    let grace = Duration::from_secs(settings.shutdown.grace_period_secs);
    tracing::info!(
        grace_period_secs = grace.as_secs(),
        "shutdown requested: no new connections; in-flight requests get the grace period"
    );
    serving.cancel();
    if tokio::time::timeout(grace, &mut task).await.is_err() {
        task.abort();
        tracing::warn!("requests still in flight after the grace period were cut off");
    } else {
        tracing::info!("drained: every in-flight request was answered");
    }
    background.cancel();
    ops_stop.cancel();
    let _ = ops_task.await;
    Ok(())
}
