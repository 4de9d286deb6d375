//! A real SMTP server (aiosmtpd from `.tools/venv`) on a free loopback port, stopped on drop.
//!
//! Every accepted message is written as one JSON file (envelope sender, envelope recipients,
//! raw message) that [`SmtpServer::messages`] reads back. The server can also refuse the first
//! messages with a chosen reply code ([`SmtpOptions::fail_first`]) so tests can inject a
//! transient (4xx) or permanent (5xx) failure, and it counts SMTP sessions (EHLO/HELO), so a
//! test can prove a refused message never reached it. With [`SmtpOptions::accept_delay`] it
//! takes each message and only then, that much later, answers `250`: the moment in which a
//! sender that dies (or gives up) does not know the message went out.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::tools::{free_port, venv_bin};

/// The server script: aiosmtpd's SMTP protocol with a handler that records to files.
const SERVER: &str = r#"
import asyncio, json, os, sys, time
from aiosmtpd.smtp import SMTP

out_dir, port, fail_first, fail_reply = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
accept_delay = float(sys.argv[5])

def write(name, text):
    tmp = os.path.join(out_dir, "." + name)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(out_dir, name))

class Recorder:
    def __init__(self):
        self.failures_left = fail_first
        self.sessions = 0
        self.accepted = 0

    def session(self):
        self.sessions += 1
        write("sessions", str(self.sessions))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.session()
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.session()
        return "250 {}".format(server.hostname)

    async def handle_DATA(self, server, session, envelope):
        if self.failures_left > 0:
            self.failures_left -= 1
            return fail_reply
        self.accepted += 1
        queued = self.accepted
        write("{:06d}.json".format(queued), json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "accepted_at": time.time(),
        }))
        if accept_delay > 0:
            await asyncio.sleep(accept_delay)
        return "250 2.0.0 OK queued as {}".format(queued)

handler = Recorder()
loop = asyncio.new_event_loop()
server = loop.run_until_complete(loop.create_server(
    lambda: SMTP(handler, hostname="edgeflow-test-smtp", enable_SMTPUTF8=True),
    host="127.0.0.1", port=port))
write("ready", "1")
loop.run_forever()
"#;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    /// Refuse this many messages (at DATA) before accepting any.
    pub fail_first: u32,
    /// The reply used to refuse them, e.g. `451 4.3.0 try again later` or
    /// `550 5.1.1 no such user`.
    pub fail_reply: String,
    /// Take each message, then wait this long before answering `250`.
    pub accept_delay: Duration,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            fail_first: 0,
            fail_reply: "451 4.3.0 Injected temporary failure".into(),
            accept_delay: Duration::ZERO,
        }
    }
}

/// One accepted message.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMessage {
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipients (`RCPT TO`), Bcc included.
    pub rcpt_to: Vec<String>,
    /// The raw message, headers and body.
    pub data: String,
    /// When the server took it (Unix seconds), just before it answered `250`.
    pub accepted_at: f64,
}

/// A running SMTP server.
pub struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A server that accepts everything.
    pub fn start() -> Result<Self> {
        Self::start_with(SmtpOptions::default())
    }

    /// A server with injected behaviour.
    pub fn start_with(options: SmtpOptions) -> Result<Self> {
        let python = venv_bin("python");
        if !python.exists() {
            bail!(
                "{} is missing; run scripts/setup (it installs aiosmtpd)",
                python.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("edgeflow-smtp-")
            .tempdir()
            .context("create a temp dir for the SMTP server")?;
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER)?;
        let port = free_port();
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(options.fail_first.to_string())
            .arg(&options.fail_reply)
            .arg(options.accept_delay.as_secs_f64().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", python.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.path().join("ready").exists() {
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                bail!("the SMTP server exited ({status}): {err}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the SMTP server did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port, dir })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect()
    }

    /// Wait until at least `count` messages arrived (or `timeout` passed); returns them all.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SMTP sessions that got as far as EHLO/HELO.
    pub fn sessions(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("sessions"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
