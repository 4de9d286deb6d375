//! Shared by the integration tests: the `edgeflow` binary as a child process, and the CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use edgeflow_testkit::temporal::http_get;
use edgeflow_testkit::tools::{free_port, repo_root};

/// The `edgeflow` binary cargo built for these tests.
pub fn edgeflow_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_edgeflow"))
}

/// A unique task queue per test, so tests sharing a server never take each other's tasks.
pub fn unique_queue(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}

/// `edgeflow` run as an operator would: settings from `config/`, overrides from `env`.
pub fn edgeflow(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(edgeflow_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("EDGEFLOW_CONFIG_DIR", repo_root().join("config"))
        .current_dir(repo_root())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `edgeflow worker`, its logs in a file; killed on drop if still running.
pub struct WorkerProcess {
    pub child: Child,
    pub ops: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// Starts `edgeflow worker` against `temporal_address` (empty: as `extra` and `config/`
    /// say), polling `queue`.
    pub fn spawn(temporal_address: &str, queue: &str, extra: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("worker.log");
        let ops = format!("127.0.0.1:{}", free_port());
        let mut env = vec![
            ("EDGEFLOW__TASK_QUEUES__MAIN__NAME", queue.to_string()),
            ("EDGEFLOW__OPS__LISTEN", ops.clone()),
            ("RUST_LOG", "info".to_string()),
        ];
        if !temporal_address.is_empty() {
            env.push(("EDGEFLOW__TEMPORAL__ADDRESS", temporal_address.to_string()));
        }
        env.extend(extra.iter().cloned());
        let out = std::fs::File::create(&log).expect("log file");
        let child = edgeflow(&["worker"], &env)
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("spawn edgeflow worker");
        Self {
            child,
            ops,
            log,
            _dir: dir,
        }
    }

    /// GET on the ops endpoint: (status, body).
    pub fn ops_get(&self, path: &str) -> (u16, String) {
        http_get(&self.ops, path).unwrap_or((0, String::new()))
    }

    /// Waits until `/readyz` answers `want`; panics with the log after `limit`.
    /// Starts a worker like [`WorkerProcess::spawn`] and waits (off the async runtime) until its
    /// `/readyz` answers 200.
    pub async fn ready(
        temporal_address: String,
        queue: String,
        extra: Vec<(&'static str, String)>,
    ) -> Self {
        tokio::task::spawn_blocking(move || {
            let mut worker = Self::spawn(&temporal_address, &queue, &extra);
            worker.wait_readyz(200, Duration::from_secs(60));
            worker
        })
        .await
        .expect("the worker start-up task")
    }

    pub fn wait_readyz(&mut self, want: u16, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("worker exited early with {status}:\n{}", self.logs());
            }
            if self.ops_get("/readyz").0 == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "/readyz never answered {want} within {limit:?}; last: {:?}\n{}",
            self.ops_get("/readyz"),
            self.logs()
        );
    }

    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
            .unwrap_or_else(|| panic!("worker did not exit within {limit:?}:\n{}", self.logs()))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// Sends signal `name` (e.g. `TERM`, `INT`) to `child`, as an operator's `kill` would.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} failed");
}

/// How `child` exited, or `None` if it is still running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A child process killed on drop if still running, so a failed assertion leaves none behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_if_running(&mut self.0);
    }
}

/// A process that stops what it started on SIGINT (`edgeflow dev`): interrupted on drop if still
/// running, so a failed assertion leaves neither it nor its children behind; killed if it does
/// not stop within 30 s.
pub struct InterruptOnDrop(pub Child);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.0.id().to_string()])
                .status();
            if wait_exit(&mut self.0, Duration::from_secs(30)).is_none() {
                kill_if_running(&mut self.0);
            }
        }
    }
}

/// The `temporal` CLI that `scripts/setup` installed.
pub fn temporal_cli() -> PathBuf {
    edgeflow_testkit::temporal::cli()
}

/// The Python that `scripts/setup` installs in `.tools/venv` (with `temporalio`,
/// `opentelemetry-sdk` and `cryptography`), or `EDGEFLOW_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var_os("EDGEFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| edgeflow_testkit::tools::venv_bin("python"))
}

/// A workflow's history as JSON events, through the `temporal` CLI.
pub fn history(address: &str, workflow_id: &str) -> Vec<serde_json::Value> {
    let out = Command::new(temporal_cli())
        .args([
            "workflow",
            "show",
            "--workflow-id",
            workflow_id,
            "--output",
            "json",
        ])
        .args(["--address", address.trim_start_matches("http://")])
        .output()
        .expect("temporal workflow show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
    doc["events"].as_array().cloned().unwrap_or_default()
}

pub fn event_types(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Free loopback ports for one `edgeflow dev` stack, so stacks and other tests can run at once.
#[derive(Clone, Copy)]
pub struct DevPorts {
    pub grpc: u16,
    pub ui: u16,
    pub http: u16,
    pub ops: u16,
    pub edge: u16,
    pub issuer: u16,
    pub demo: u16,
    pub gateway: u16,
}

impl DevPorts {
    pub fn free() -> Self {
        let free_port = edgeflow_testkit::tools::free_port;
        Self {
            grpc: free_port(),
            ui: free_port(),
            http: free_port(),
            ops: free_port(),
            edge: free_port(),
            issuer: free_port(),
            demo: free_port(),
            gateway: free_port(),
        }
    }

    /// The settings that put an `edgeflow dev` stack on these ports, with its state (database,
    /// outbox, Temporal's file) under `var`.
    pub fn env(&self, var: &Path) -> Vec<(&'static str, String)> {
        let Self {
            grpc,
            ui,
            http,
            ops,
            edge,
            issuer,
            demo,
            gateway,
        } = *self;
        vec![
            (
                "EDGEFLOW__TEMPORAL__ADDRESS",
                format!("http://127.0.0.1:{grpc}"),
            ),
            ("EDGEFLOW__DEV__TEMPORAL_UI_PORT", ui.to_string()),
            ("EDGEFLOW__DEV__TEMPORAL_HTTP_PORT", http.to_string()),
            ("EDGEFLOW__DEV__VAR_DIR", var.display().to_string()),
            ("EDGEFLOW__DEV__EDGE_PORT", edge.to_string()),
            ("EDGEFLOW__DEV__ISSUER_PORT", issuer.to_string()),
            ("EDGEFLOW__DEV__DEMO_SERVICES_PORT", demo.to_string()),
            ("EDGEFLOW__GATEWAY__LISTEN", format!("127.0.0.1:{gateway}")),
            ("EDGEFLOW__OPS__LISTEN", format!("127.0.0.1:{ops}")),
            (
                "EDGEFLOW__WEBHOOKS__EDGE__URL",
                format!("http://127.0.0.1:{edge}/v1/hooks/temporal"),
            ),
            (
                "EDGEFLOW__DATABASE__URL",
                format!("sqlite://{}/edgeflow.db?mode=rwc", var.display()),
            ),
            (
                "EDGEFLOW__EMAIL__OUTBOX__DIR",
                var.join("outbox").display().to_string(),
            ),
            (
                "EDGEFLOW__SERVICES__INVENTORY__BASE_URL",
                format!("http://127.0.0.1:{demo}/inventory/"),
            ),
            (
                "EDGEFLOW__SERVICES__PAYMENTS__BASE_URL",
                format!("http://127.0.0.1:{demo}/payments/"),
            ),
            (
                "EDGEFLOW__SERVICES__SHIPPING__BASE_URL",
                format!("http://127.0.0.1:{demo}/shipping/"),
            ),
        ]
    }
}

/// `edgeflow dev` with `env` (see [`DevPorts::env`]), its output in `var/dev.log`; interrupted
/// on drop, so a failed assertion leaves nothing it started behind.
pub struct DevStack {
    process: InterruptOnDrop,
    log: PathBuf,
}

impl DevStack {
    /// Starts the stack and waits until its ops port's `/readyz` answers 200; fails the test with
    /// the stack's log if it exits first or is not ready within `limit`.
    pub fn ready(env: &[(&str, String)], var: &Path, ops: u16, limit: Duration) -> Self {
        let log = var.join("dev.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut stack = Self {
            process: InterruptOnDrop(
                edgeflow(&["dev"], env)
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .spawn()
                    .expect("edgeflow dev"),
            ),
            log,
        };
        let deadline = Instant::now() + limit;
        while http_get(&format!("127.0.0.1:{ops}"), "/readyz")
            .map(|(s, _)| s)
            .unwrap_or(0)
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "dev stack never ready:\n{}",
                stack.logs()
            );
            assert!(
                stack.process.0.try_wait().unwrap().is_none(),
                "edgeflow dev exited:\n{}",
                stack.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        stack
    }

    /// Everything the stack has printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C: the stack must stop within 30 s and exit successfully.
    pub fn interrupt(mut self) {
        signal(&self.process.0, "INT");
        let exit = wait_exit(&mut self.process.0, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("edgeflow dev did not stop:\n{}", self.logs()));
        assert!(exit.success(), "{exit}\n{}", self.logs());
    }
}
