//! A Temporal dev server (`temporal server start-dev`) on free loopback ports.
//!
//! In memory (no `--db-filename`): the fastest store, and each test binary gets a clean server.
//! It registers edgeflow's custom search attributes, allows completion callbacks to loopback
//! (the edge's `/v1/hooks/temporal-callback`) and completes a stopping worker's polls
//! (`frontend.enableCancelWorkerPollsOnShutdown`), like `edgeflow dev` does. It can be stopped
//! and started again on the same ports, for tests of what the worker does while it is down.
//!
//! Its ports are picked free and bound a moment later: ours by [`free_port`], its internal
//! services' by the server itself. Both keep a picked port off later binds to port 0, but a
//! process that binds a fixed port can still take it in between; the server then exits with
//! "address already in use", and a start that lost such a race is retried.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{free_port, venv_bin};

/// How often a start that lost a port race is tried again before the test fails.
const START_ATTEMPTS: u32 = 5;

pub struct DevServer {
    pub grpc_port: u16,
    pub http_port: u16,
    pub ui_port: u16,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DevServer {
    /// Starts a server on free ports and waits until its HTTP API answers.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut server = Self {
            grpc_port: 0,
            http_port: 0,
            ui_port: 0,
            child: None,
            log: dir.path().join("temporal.log"),
            _dir: dir,
        };
        // One of our own ports may be the one taken: each attempt picks all of them afresh.
        server.start_retrying_port_races(|server| {
            server.grpc_port = free_port();
            server.http_port = free_port();
            server.ui_port = free_port();
        })?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`, the gRPC address for workers and clients.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Base URL of Temporal's HTTP API.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the server again on the same ports after [`DevServer::stop`].
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.start_retrying_port_races(|_| {})
    }

    fn start_retrying_port_races(&mut self, pick_ports: impl Fn(&mut Self)) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            pick_ports(self);
            let log_before = std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
            let result = self.spawn_and_wait();
            let lost_a_port_race = || {
                std::fs::read(&self.log).is_ok_and(|log| {
                    String::from_utf8_lossy(log.get(log_before..).unwrap_or_default())
                        .contains("address already in use")
                })
            };
            match result {
                Err(_) if attempt < START_ATTEMPTS && lost_a_port_race() => {
                    self.stop();
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let cli = std::env::var_os("EDGEFLOW_TEMPORAL_CLI")
            .map(PathBuf::from)
            .unwrap_or_else(|| venv_bin("temporal"));
        anyhow::ensure!(
            cli.exists(),
            "the temporal CLI is not at {}; run scripts/setup first",
            cli.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(cli)
            .args([
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--log-level",
                "warn",
            ])
            .args(["--port", &self.grpc_port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--ui-port", &self.ui_port.to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .args(["--search-attribute", "EdgeSubject=Keyword"])
            .args(["--search-attribute", "EdgeRequestId=Keyword"])
            .args([
                "--dynamic-config-value",
                r#"callback.allowedAddresses=[{"Pattern":"127.0.0.1:*","AllowInsecure":true}]"#,
            ])
            // A stopping worker's in-flight polls are completed by the server instead of being
            // dropped by the worker, so no task is started and then lost (docs/architecture.md,
            // "Stopping").
            .args([
                "--dynamic-config-value",
                "frontend.enableCancelWorkerPollsOnShutdown=true",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_until_serving(Duration::from_secs(60))
    }

    fn wait_until_serving(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        // The HTTP API answers only once the frontend and the default namespace are up.
        let probe = format!("127.0.0.1:{}", self.http_port);
        while started.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "temporal dev server exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if http_ok(&probe, "/api/v1/namespaces/default") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        anyhow::bail!("temporal dev server did not answer within {limit:?}")
    }

    /// Stops the server (SIGKILL, like a crash); the ports stay reserved for [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.0 GET on loopback; true on a 2xx status.
pub fn http_ok(host_port: &str, path: &str) -> bool {
    http_get(host_port, path)
        .map(|(status, _)| (200..300).contains(&status))
        .unwrap_or(false)
}

/// A plain HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(host_port: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host_port)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host_port}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
