//! Where the tools that `scripts/setup` installs live, and free loopback ports.

use std::path::PathBuf;

pub use edgeflow_devserver::free_port;

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
