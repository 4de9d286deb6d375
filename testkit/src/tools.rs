//! Where the tools that `scripts/setup` installs live, and free loopback ports.

use std::net::TcpListener;
use std::path::PathBuf;

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the repository root")
        .to_path_buf()
}

/// A program installed by `scripts/setup` into `.tools/venv/bin`.
pub fn venv_bin(name: &str) -> PathBuf {
    repo_root().join(".tools/venv/bin").join(name)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}
