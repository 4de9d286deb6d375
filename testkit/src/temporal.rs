//! A Temporal dev server for tests, started the one way edgeflow starts one
//! ([`edgeflow_devserver`]): in memory, headless, on free loopback ports, with edgeflow's search
//! attributes, completion callbacks to loopback and a stopping worker's polls completed.
//!
//! Most tests share one server per test binary ([`shared`]): a server takes seconds and a core to
//! start, and tests never meet on it because each polls its own task queue and names its own
//! workflow ids. A test that stops and restarts the server, or changes namespace-wide state, starts
//! its own with [`DevServer::start`].

use std::sync::OnceLock;
use std::time::Duration;

pub use edgeflow_devserver::http_get;

use crate::tools::repo_root;

pub struct DevServer {
    server: edgeflow_devserver::DevServer,
    _dir: tempfile::TempDir,
}

impl DevServer {
    /// Starts a server of this test's own and waits until its HTTP API answers.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    fn start_with(die_with_starting_thread: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut options = edgeflow_devserver::Options::new(cli(), dir.path().join("temporal.log"));
        options.die_with_starting_thread = die_with_starting_thread;
        let server = edgeflow_devserver::DevServer::start(options)?;
        Ok(Self { server, _dir: dir })
    }

    /// The gRPC port.
    pub fn grpc_port(&self) -> u16 {
        self.server.ports().grpc
    }

    /// `http://127.0.0.1:PORT`, the gRPC address for workers and clients.
    pub fn address(&self) -> String {
        format!("http://{}", self.server.grpc_address())
    }

    /// Base URL of Temporal's HTTP API.
    pub fn http_url(&self) -> String {
        self.server.http_url()
    }

    /// Starts the server again on the same ports after [`DevServer::stop`].
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        Ok(self.server.start_again()?)
    }

    /// Stops the server (SIGKILL, like a crash); the ports stay reserved for [`Self::start_again`].
    pub fn stop(&mut self) {
        self.server.kill();
    }
}

/// The test binary's shared server, started by the first test that asks for it.
///
/// A static is never dropped, so the server is started to die with the thread that started it
/// (`PR_SET_PDEATHSIG`): a thread of its own, parked for the life of the process, so the server
/// ends exactly when the test binary does, however it ends. Its temporary folder (the log) is
/// left behind in the system's temp dir.
pub fn shared() -> &'static DevServer {
    static SHARED: OnceLock<DevServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shared-temporal-dev-server".into())
            .spawn(move || {
                let _ = tx.send(DevServer::start_with(true));
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the shared dev server's thread");
        rx.recv_timeout(Duration::from_secs(300))
            .expect("the shared dev server's thread answers")
            .expect("the shared dev server starts")
    })
}

/// The `temporal` CLI the tests run: `EDGEFLOW_TEMPORAL_CLI`, else the one `scripts/setup`
/// installs in `.tools/venv`.
pub fn cli() -> std::path::PathBuf {
    edgeflow_devserver::cli_path(&repo_root())
}
