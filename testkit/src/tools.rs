//! Where the tools that `scripts/setup` installs live, and free loopback ports.

use std::net::{TcpListener, TcpStream};
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
