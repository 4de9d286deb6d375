//! Connecting to Temporal, and rotating credentials under a running worker.
//!
//! The connection is built from `[temporal]`: address, TLS with a custom CA, mTLS, and an API key
//! from the settings, an environment variable or a file. Rotation needs no restart: a watcher
//! re-reads the API key file and the client certificate files every
//! `temporal.credentials_check_secs`; a new key is swapped into the live connection (the SDK sends
//! it on every later call), a new certificate is served to every later TLS handshake.
//!
//! [`settings`]: the `[temporal]` section this module reads, and its checks.

pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use temporalio_client::{
    CertifiedKey, Connection, ConnectionOptions, ResolvesClientCert, SignatureScheme, TlsOptions,
};
use temporalio_common::telemetry::metrics::TemporalMeter;
use tokio_util::sync::CancellationToken;

use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;

use crate::ops::Readiness;
use settings::{GrpcCompression, TemporalSettings};

/// The identity a process shows in Temporal and as its telemetry instance: `worker.identity`,
/// else `<program>-<pid>@<host>` (`edgeflow` for the worker, `edgeflow-gateway` for the gateway).
pub fn identity(settings: &crate::settings::Settings, program: &str) -> String {
    settings.worker.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{program}-{}@{host}", std::process::id())
    })
}

/// The API key named by the settings, read now.
pub fn read_api_key(t: &TemporalSettings) -> anyhow::Result<Option<String>> {
    if let Some(key) = &t.api_key {
        return Ok(Some(secrecy::ExposeSecret::expose_secret(key).to_string()));
    }
    if let Some(var) = &t.api_key_env {
        let key = std::env::var(var).with_context(|| format!("reading env var {var}"))?;
        return Ok(Some(key.trim().to_string()));
    }
    if let Some(file) = &t.api_key_file {
        return read_key_file(file).map(Some);
    }
    Ok(None)
}

fn read_key_file(file: &Path) -> anyhow::Result<String> {
    let key = std::fs::read_to_string(file)
        .with_context(|| format!("reading API key file {}", file.display()))?;
    let key = key.trim().to_string();
    if key.is_empty() {
        bail!("API key file {} is empty", file.display());
    }
    Ok(key)
}

/// Serves the client certificate most recently read from disk to each new TLS handshake.
#[derive(Debug)]
pub struct RotatingClientCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl RotatingClientCert {
    pub fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(Arc::new(load_certified_key(cert_file, key_file)?)),
        })
    }

    fn reload(&self) -> anyhow::Result<()> {
        let fresh = load_certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesClientCert for RotatingClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn load_certified_key(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("reading client certificate {}", cert_file.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing client certificate {}", cert_file.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading client key {}", key_file.display()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
        .with_context(|| format!("unsupported client key type in {}", key_file.display()))?;
    Ok(CertifiedKey::new(certs, signing_key))
}

/// Connects to Temporal as the settings say. Returns the connection and, when mTLS is on, the
/// rotating certificate for [`watch_credentials`].
pub async fn connect(
    t: &TemporalSettings,
    identity: &str,
    meter: Option<TemporalMeter>,
) -> anyhow::Result<(Connection, Option<Arc<RotatingClientCert>>)> {
    let api_key = read_api_key(t)?;
    let client_cert = match (&t.tls.client_cert_file, &t.tls.client_key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(RotatingClientCert::load(cert, key)?)),
        _ => None,
    };
    // A bare `host:port` follows Temporal's convention: an API key means TLS (Temporal Cloud).
    let tls_wanted = t.tls.enabled
        || t.tls.ca_file.is_some()
        || client_cert.is_some()
        || (t.address.is_host_port() && api_key.is_some());
    let target = t.address.endpoint(tls_wanted).clone();
    let tls_wanted = tls_wanted || target.scheme() == "https";
    if api_key.is_some() && !tls_wanted {
        tracing::warn!(address = %t.address, "sending the Temporal API key without TLS");
    }
    let tls = if tls_wanted {
        let ca = match &t.tls.ca_file {
            Some(f) => {
                Some(std::fs::read(f).with_context(|| format!("reading CA {}", f.display()))?)
            }
            None => None,
        };
        Some(
            TlsOptions::builder()
                .maybe_server_root_ca_cert(ca)
                .maybe_domain(t.tls.domain.clone())
                .maybe_client_cert_resolver(
                    client_cert
                        .clone()
                        .map(|c| c as Arc<dyn ResolvesClientCert>),
                )
                .build(),
        )
    } else {
        None
    };
    let options = ConnectionOptions::new(target)
        .identity(identity.to_string())
        .maybe_api_key(api_key)
        .maybe_tls_options(tls)
        .maybe_metrics_meter(meter)
        .connect_timeout(Duration::from_secs(t.connect_timeout_secs))
        .grpc_compression(match compression(t).0 {
            GrpcCompression::Gzip => temporalio_client::GrpcCompression::Gzip,
            _ => temporalio_client::GrpcCompression::None,
        })
        // The SDK refuses a certificate resolver together with DNS load balancing.
        .dns_load_balancing(None)
        .build();
    let connection = Connection::connect(options)
        .await
        .with_context(|| format!("connecting to Temporal at {}", t.address))?;
    Ok((connection, client_cert))
}

/// The gRPC compression to use and why: `auto` is `none` when every address the host resolves to is
/// loopback or private (compression only costs CPU there), else `gzip` (a wide-area link, e.g.
/// Temporal Cloud). Stated by `edgeflow config check` and logged at start-up.
pub fn compression(t: &TemporalSettings) -> (GrpcCompression, String) {
    match t.grpc_compression {
        GrpcCompression::Gzip => (GrpcCompression::Gzip, "set to gzip".into()),
        GrpcCompression::None => (GrpcCompression::None, "set to none".into()),
        GrpcCompression::Auto => {
            let url = t.address.endpoint(false);
            let host = url
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string();
            let port = url.port_or_known_default().unwrap_or(7233);
            let addresses: Vec<std::net::IpAddr> = match host.parse() {
                Ok(ip) => vec![ip],
                Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                    .map(|a| a.map(|a| a.ip()).collect())
                    .unwrap_or_default(),
            };
            if addresses.is_empty() {
                (
                    GrpcCompression::Gzip,
                    format!("auto: {host} does not resolve here, so it is treated as remote"),
                )
            } else if addresses.iter().all(is_local) {
                (
                    GrpcCompression::None,
                    format!("auto: {host} is a loopback or private address"),
                )
            } else {
                (
                    GrpcCompression::Gzip,
                    format!("auto: {host} is a public address"),
                )
            }
        }
    }
}

/// Loopback, private (RFC 1918, unique local), link-local or shared (100.64/10) addresses.
fn is_local(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Re-reads the API key file and client certificate files until `stop`, swapping changes into
/// the live connection. A file that can't be read keeps the last good credential and logs why.
pub async fn watch_credentials(
    t: TemporalSettings,
    connection: Connection,
    client_cert: Option<Arc<RotatingClientCert>>,
    stop: CancellationToken,
) {
    let mut key_seen = t.api_key_file.as_deref().and_then(fingerprint);
    let mut cert_seen = client_cert
        .as_ref()
        .and_then(|c| fingerprint_pair(&c.cert_file, &c.key_file));
    let mut tick = tokio::time::interval(Duration::from_secs(t.credentials_check_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(file) = &t.api_key_file {
            let now = fingerprint(file);
            if now.is_some() && now != key_seen {
                match read_key_file(file) {
                    Ok(key) => {
                        connection.set_api_key(Some(key));
                        key_seen = now;
                        tracing::info!(file = %file.display(), "Temporal API key reloaded");
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "keeping the previous API key")
                    }
                }
            }
        }
        if let Some(cert) = &client_cert {
            let now = fingerprint_pair(&cert.cert_file, &cert.key_file);
            if now.is_some() && now != cert_seen {
                match cert.reload() {
                    Ok(()) => {
                        cert_seen = now;
                        tracing::info!(file = %cert.cert_file.display(), "client certificate reloaded");
                    }
                    Err(e) => tracing::warn!(
                        error = %format!("{e:#}"),
                        "keeping the previous client certificate"
                    ),
                }
            }
        }
    }
}

/// Content hash of a file: modification times are too coarse to catch two writes in a second.
fn fingerprint(file: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(file).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

fn fingerprint_pair(a: &Path, b: &Path) -> Option<(u64, u64)> {
    Some((fingerprint(a)?, fingerprint(b)?))
}

/// What [`connect`] gives: the connection and, with mTLS, its rotating client certificate.
pub type Connected = (Connection, Option<Arc<RotatingClientCert>>);

/// Connects, retrying with backoff (0.25 s, doubling up to 10 s) while the server is unreachable
/// and saying why on `/readyz` meanwhile; `None` if `stop` comes first. Used by the worker and
/// the gateway, which both start before Temporal is reachable and wait for it.
pub async fn connect_until_stopped(
    t: &TemporalSettings,
    identity: &str,
    readiness: &Readiness,
    stop: &CancellationToken,
) -> Option<Connected> {
    let mut delay = Duration::from_millis(250);
    loop {
        match connect(t, identity, None).await {
            Ok(c) => {
                let (compression, why) = compression(t);
                tracing::info!(
                    address = %t.address,
                    namespace = %t.namespace,
                    grpc_compression = ?compression,
                    grpc_compression_reason = %why,
                    "connected to Temporal"
                );
                return Some(c);
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::warn!(error = %reason, retry_in_ms = delay.as_millis() as u64, "cannot connect to Temporal yet");
                readiness.set_not_ready(reason);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Keeps `/readyz` true until `stop`: ready while `local` (the caller's own condition: the reason
/// it is not ready, or `None`) holds and the namespace answers, checked every `every`; each change
/// is logged once.
pub async fn follow_readiness(
    connection: Connection,
    t: TemporalSettings,
    every: Duration,
    readiness: Arc<Readiness>,
    local: impl Fn() -> Option<String>,
    stop: CancellationToken,
) {
    let mut was_ready = None;
    loop {
        let answer = tokio::time::timeout(
            every.max(Duration::from_secs(2)),
            connection.workflow_service().describe_namespace(
                temporalio_client::tonic::Request::new(DescribeNamespaceRequest {
                    namespace: t.namespace.clone(),
                    ..Default::default()
                }),
            ),
        )
        .await;
        let state = match (local(), answer) {
            (Some(reason), _) => Err(reason),
            (None, Ok(Ok(_))) => Ok(()),
            (None, Ok(Err(status))) => Err(format!(
                "Temporal at {} answered {:?}: {}",
                t.address,
                status.code(),
                status.message()
            )),
            (None, Err(_)) => Err(format!("Temporal at {} did not answer in time", t.address)),
        };
        let ready = state.is_ok();
        match state {
            Ok(()) => readiness.set_ready(),
            Err(reason) => readiness.set_not_ready(reason),
        }
        if was_ready != Some(ready) {
            match readiness.get() {
                Ok(()) => tracing::info!("ready"),
                Err(reason) => tracing::warn!(%reason, "not ready"),
            }
            was_ready = Some(ready);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporal(address: &str, compression: GrpcCompression) -> TemporalSettings {
        TemporalSettings {
            address: address.parse().expect("a valid address"),
            namespace: "default".into(),
            api_key: None,
            api_key_env: None,
            api_key_file: None,
            connect_timeout_secs: 1,
            credentials_check_secs: 1,
            grpc_compression: compression,
            tls: settings::TlsSettings {
                enabled: false,
                ca_file: None,
                client_cert_file: None,
                client_key_file: None,
                domain: None,
            },
        }
    }

    #[test]
    fn auto_compression_is_none_on_loopback_and_private_addresses_and_gzip_elsewhere() {
        for local in [
            "127.0.0.1:7233",
            "http://10.1.2.3:7233",
            "192.168.0.9:7233",
            "[::1]:7233",
            "localhost:7233",
            "[fd00::1]:7233",
        ] {
            assert_eq!(
                compression(&temporal(local, GrpcCompression::Auto)).0,
                GrpcCompression::None,
                "{local}"
            );
        }
        for remote in ["8.8.8.8:7233", "https://1.1.1.1:7233"] {
            assert_eq!(
                compression(&temporal(remote, GrpcCompression::Auto)).0,
                GrpcCompression::Gzip,
                "{remote}"
            );
        }
        assert_eq!(
            compression(&temporal("127.0.0.1:7233", GrpcCompression::Gzip)).0,
            GrpcCompression::Gzip
        );
    }
}
