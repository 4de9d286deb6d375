//! The one way edgeflow starts a Temporal dev server (`temporal server start-dev`).
//!
//! `edgeflow dev`, `edgeflow dev server` (which the edge's e2e harness and the benchmark harness
//! run) and testkit all start it here, so its flags, its ports and its retry after a lost port
//! race are written once:
//! - edgeflow's search attributes ([`SEARCH_ATTRIBUTES`], whose one Rust spelling lives here) are
//!   registered at start;
//! - completion callbacks to loopback are allowed ([`CALLBACKS_ON_LOOPBACK`]), for the edge's
//!   `/v1/hooks/temporal-callback`;
//! - a stopping worker's polls are completed by the server ([`POLLS_COMPLETED_ON_SHUTDOWN`]);
//! - in memory unless a database file is named.
//!
//! Ports are picked free by [`free_port`] and bound by the server a moment later; its internal
//! services' ports it picks itself. Both keep a picked port off later binds to port 0, but a
//! process that binds a fixed port can still take one in between: the server then exits with
//! "address already in use", and the start is tried again, on fresh ports for those it picked.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A search attribute the edge (and `edgeflow gateway`) sets on every run it starts, so a run can
/// be found by who started it or by the edge request that did. Every namespace edgeflow serves
/// needs them registered (a dev server here does it at start; elsewhere `temporal operator
/// search-attribute create --name EdgeSubject --type Keyword`), so their one Rust spelling lives
/// here; `edgeflow schema export` puts them in the edge's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchAttribute {
    /// What it holds: its key under `search_attributes` in the manifest, e.g. `subject`.
    pub holds: &'static str,
    /// Its name in Temporal, e.g. `EdgeSubject`.
    pub name: &'static str,
    /// Its Temporal type.
    pub kind: &'static str,
}

/// The verified caller's subject (the token's `sub`).
pub const EDGE_SUBJECT: SearchAttribute = SearchAttribute {
    holds: "subject",
    name: "EdgeSubject",
    kind: "Keyword",
};

/// The id of the edge request that started the run (its `X-Request-Id`).
pub const EDGE_REQUEST_ID: SearchAttribute = SearchAttribute {
    holds: "request_id",
    name: "EdgeRequestId",
    kind: "Keyword",
};

/// Every search attribute the edge sets.
pub const SEARCH_ATTRIBUTES: [SearchAttribute; 2] = [EDGE_SUBJECT, EDGE_REQUEST_ID];

/// Dynamic config that lets the dev server call the edge's completion callback on loopback over
/// plain http (Temporal refuses every callback URL by default; docs/operations.md says what a
/// production cluster needs).
pub const CALLBACKS_ON_LOOPBACK: &str =
    r#"callback.allowedAddresses=[{"Pattern":"127.0.0.1:*","AllowInsecure":true}]"#;

/// Dynamic config that makes the server complete a stopping worker's in-flight polls on
/// `ShutdownWorker`, so a task matched in that instant is not started and lost
/// (docs/architecture.md, "Stopping"; deploy/README.md says what a production cluster needs).
pub const POLLS_COMPLETED_ON_SHUTDOWN: &str = "frontend.enableCancelWorkerPollsOnShutdown=true";

/// The `temporal` CLI: `EDGEFLOW_TEMPORAL_CLI`, else the one `scripts/setup` installs under
/// `root` (`.tools/venv/bin/temporal`), else `temporal` on the `PATH`.
pub fn cli_path(root: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEFLOW_TEMPORAL_CLI") {
        return PathBuf::from(path);
    }
    let local = root.join(".tools/venv/bin/temporal");
    if local.exists() {
        local
    } else {
        PathBuf::from("temporal")
    }
}

/// How a dev server is started. Port 0 means "pick a free one" (again on every attempt).
#[derive(Debug, Clone)]
pub struct Options {
    /// The `temporal` CLI.
    pub cli: PathBuf,
    pub ip: IpAddr,
    pub grpc_port: u16,
    pub http_port: u16,
    /// The web UI's port; `None` starts the server headless.
    pub ui_port: Option<u16>,
    pub namespace: String,
    /// The SQLite file it persists to; `None` keeps everything in memory (the fastest store).
    pub db_file: Option<PathBuf>,
    /// `--log-level` (`debug`, `info`, `warn`, `error`).
    pub log_level: String,
    /// Where its output goes (appended to).
    pub log: PathBuf,
    /// Further `--dynamic-config-value KEY=VALUE`s.
    pub dynamic_config: Vec<String>,
    /// `--ui-codec-endpoint`: where the UI sends payloads to be decoded.
    pub ui_codec_endpoint: Option<String>,
    /// How many starts are tried when a start loses a port race.
    pub attempts: u32,
    /// How long one start may take to answer.
    pub ready_within: Duration,
    /// Kill the server when the thread that started it dies (Linux `PR_SET_PDEATHSIG`), so a
    /// wrapper killed with SIGKILL leaves nothing behind. Only for a process's main thread: the
    /// signal follows the starting *thread*, and a pool thread may end while the server runs.
    pub die_with_starting_thread: bool,
}

impl Options {
    /// In memory, headless, on free loopback ports, namespace `default`, logging to `log`.
    pub fn new(cli: PathBuf, log: PathBuf) -> Self {
        Self {
            cli,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            grpc_port: 0,
            http_port: 0,
            ui_port: None,
            namespace: "default".into(),
            db_file: None,
            log_level: "warn".into(),
            log,
            dynamic_config: Vec::new(),
            ui_codec_endpoint: None,
            attempts: 5,
            ready_within: Duration::from_secs(60),
            die_with_starting_thread: false,
        }
    }
}

/// The ports a running server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub grpc: u16,
    pub http: u16,
    pub ui: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("starting {cli} (run scripts/setup to install the temporal CLI): {source}")]
    Spawn { cli: String, source: std::io::Error },
    #[error("the Temporal dev server exited with {status}; its log ({log}) ends with:\n{tail}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
        tail: String,
    },
    #[error("the Temporal dev server did not answer on {url} within {limit:?}; see {log}")]
    NotReady {
        url: String,
        limit: Duration,
        log: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    fn lost_a_port_race(&self) -> bool {
        matches!(self, Error::Exited { tail, .. } if tail.contains("address already in use"))
    }
}

/// A running dev server; stopped (SIGKILL) when dropped.
pub struct DevServer {
    options: Options,
    ports: Ports,
    child: Option<Child>,
    /// Which start this is (1 for the first), for callers that say so.
    starts: u32,
    /// Why each start that lost a port race failed, oldest first.
    lost_races: Vec<String>,
}

impl DevServer {
    /// Starts a server and waits until its HTTP API answers for the namespace. A start that lost
    /// a port race is tried again, up to `options.attempts` times, each on fresh free ports for
    /// those given as 0.
    pub fn start(options: Options) -> Result<Self, Error> {
        let mut server = Self {
            ports: Ports {
                grpc: 0,
                http: 0,
                ui: None,
            },
            options,
            child: None,
            starts: 0,
            lost_races: Vec::new(),
        };
        server.start_retrying_port_races(true)?;
        Ok(server)
    }

    /// Starts it again on the same ports after [`DevServer::kill`] or [`DevServer::stop`], with
    /// the same database file: its clients reconnect as to a restarted server.
    pub fn start_again(&mut self) -> Result<(), Error> {
        self.start_retrying_port_races(false)
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// `host:port` of the gRPC frontend.
    pub fn grpc_address(&self) -> SocketAddr {
        SocketAddr::new(self.options.ip, self.ports.grpc)
    }

    /// `http://host:port`, the base URL of Temporal's HTTP API.
    pub fn http_url(&self) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.options.ip, self.ports.http)
        )
    }

    pub fn namespace(&self) -> &str {
        &self.options.namespace
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times it has been started (1 after [`DevServer::start`]).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Why each start that lost a port race (and was tried again) failed, oldest first.
    pub fn lost_races(&self) -> &[String] {
        &self.lost_races
    }

    /// `Some(status)` once the server process has exited by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops it like a crash (SIGKILL). The ports stay reserved for [`DevServer::start_again`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it cleanly (SIGTERM, SIGKILL after `grace`), so a database file is left consistent.
    /// One in memory has nothing to keep and is killed at once (a clean stop takes seconds).
    pub fn stop(&mut self, grace: Duration) {
        if self.options.db_file.is_none() {
            return self.kill();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: signals only the child this value owns, which has not been reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn start_retrying_port_races(&mut self, pick_ports: bool) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            if pick_ports {
                self.ports = Ports {
                    grpc: pick(self.options.grpc_port),
                    http: pick(self.options.http_port),
                    ui: self.options.ui_port.map(pick),
                };
            }
            match self.spawn_and_wait() {
                Err(error) if attempt < self.options.attempts && error.lost_a_port_race() => {
                    self.kill();
                    self.lost_races.push(error.to_string());
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let options = &self.options;
        let log_before = std::fs::metadata(&options.log).map_or(0, |m| m.len());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)
            .map_err(|source| Error::Io {
                what: format!("opening {}", options.log.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            what: "duplicating the log file handle".into(),
            source,
        })?;
        let mut command = Command::new(&options.cli);
        command
            .args(["server", "start-dev", "--ip", &options.ip.to_string()])
            .args(["--port", &self.ports.grpc.to_string()])
            .args(["--http-port", &self.ports.http.to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .args(["--namespace", &options.namespace])
            .args(["--log-level", &options.log_level]);
        match self.ports.ui {
            Some(port) => command.args(["--ui-port", &port.to_string()]),
            None => command.arg("--headless"),
        };
        if let Some(db) = &options.db_file {
            command.arg("--db-filename").arg(db);
        }
        if let Some(endpoint) = &options.ui_codec_endpoint {
            command.args(["--ui-codec-endpoint", endpoint]);
        }
        for attribute in SEARCH_ATTRIBUTES {
            let spec = format!("{}={}", attribute.name, attribute.kind);
            command.args(["--search-attribute", &spec]);
        }
        for value in [CALLBACKS_ON_LOOPBACK, POLLS_COMPLETED_ON_SHUTDOWN]
            .into_iter()
            .chain(options.dynamic_config.iter().map(String::as_str))
        {
            command.args(["--dynamic-config-value", value]);
        }
        if options.die_with_starting_thread {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| Error::Spawn {
                cli: options.cli.display().to_string(),
                source,
            })?;
        self.child = Some(child);
        self.starts += 1;
        self.wait_until_serving(log_before)
    }

    /// Until the HTTP API answers for the namespace (the frontend and the namespace are up) with
    /// the process still running: a service that failed to bind ends the process.
    fn wait_until_serving(&mut self, log_before: u64) -> Result<(), Error> {
        let options = &self.options;
        let http = SocketAddr::new(options.ip, self.ports.http);
        let path = format!("/api/v1/namespaces/{}", options.namespace);
        let started = Instant::now();
        while started.elapsed() < options.ready_within {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(Error::Exited {
                    status,
                    log: options.log.display().to_string(),
                    tail: log_since(&options.log, log_before),
                });
            }
            if http_get(&http.to_string(), &path).is_ok_and(|(status, _)| status / 100 == 2) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::NotReady {
            url: format!("http://{http}{path}"),
            limit: options.ready_within,
            log: options.log.display().to_string(),
        })
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pick(port: u16) -> u16 {
    if port == 0 { free_port() } else { port }
}

/// What the log gained since `offset` (the last 4 KiB of it).
fn log_since(log: &Path, offset: u64) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let new = bytes.get(offset as usize..).unwrap_or_default();
    let tail = &new[new.len().saturating_sub(4096)..];
    String::from_utf8_lossy(tail).into_owned()
}

/// A port on 127.0.0.1 that is free, and that the kernel will not hand out again for a minute.
///
/// A port that is only bound and released can come back from the very next `bind(…:0)`, of this
/// process (two ports of one stack were once the same) or of another (the Temporal dev server
/// picks its internal services' ports that way). So a connection is made to it and closed from
/// the listening side first: that side's socket waits in TIME_WAIT (60 s on Linux), which keeps
/// `bind(…:0)` and outgoing connections off the port, while a listener that sets `SO_REUSEADDR`
/// (Rust's std and tokio, Go, Node, asyncio, PostgreSQL and workerd all do) can still bind it.
/// The Temporal CLI picks its own ports the same way.
pub fn free_port() -> u16 {
    reserve_free_port().expect("reserve a free port on 127.0.0.1")
}

fn reserve_free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let client = TcpStream::connect(address)?;
    let (listening_side, _) = listener.accept()?;
    // The listening side closes first, so its socket is the one left in TIME_WAIT.
    drop(listening_side);
    drop(client);
    Ok(address.port())
}

/// A plain HTTP/1.0 GET: (status, body).
pub fn http_get(host_port: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(host_port)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_is_never_handed_out_again_yet_a_server_can_bind_it() {
        let reserved: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<_> = reserved.iter().collect();
        assert_eq!(distinct.len(), reserved.len(), "{reserved:?}");
        // Unreserved, 5,000 binds to port 0 would land on one of these 20 ports almost surely.
        for _ in 0..5_000 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            assert!(
                !reserved.contains(&port),
                "port {port} was handed out again"
            );
        }
        for port in reserved {
            TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("a server cannot bind reserved port {port}: {e}"));
        }
    }
}
