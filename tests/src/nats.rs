//! NATS for the tests: the server's URL from the environment, names no other test uses, and a
//! server of a test's own (to kill and restart).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The NATS server's URL from `EVENT_BUS_NATS_URL`; `None` (with a printed line, so the skip is
/// visible) when it is not set, unless `EVENT_BUS_REQUIRE_SERVICES` is set: then a missing
/// server fails the test.
pub fn nats_url() -> Option<String> {
    match std::env::var("EVENT_BUS_NATS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("EVENT_BUS_REQUIRE_SERVICES").is_some() => {
            panic!("EVENT_BUS_REQUIRE_SERVICES is set but EVENT_BUS_NATS_URL is not")
        }
        Err(_) => {
            eprintln!("skipped: set EVENT_BUS_NATS_URL to run the NATS tests");
            None
        }
    }
}

/// A subject prefix no other test (or earlier run) uses: its streams are its own.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "t{}-{}-{test}",
        std::process::id(),
        fastrand::u64(..) % 1_000_000_000
    )
    .replace('_', "-")
}

/// A `nats-server` with JetStream of a test's own, on a free port with a store in a temporary
/// directory; killed when dropped.
#[derive(Debug)]
pub struct OwnServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    binary: PathBuf,
}

impl OwnServer {
    /// Starts one, or `None` (printed) when `nats-server` is not installed and services are not
    /// required.
    pub fn start(store: &Path) -> Option<Self> {
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists());
        let Some(binary) = binary else {
            if std::env::var_os("EVENT_BUS_REQUIRE_SERVICES").is_some() {
                panic!("EVENT_BUS_REQUIRE_SERVICES is set but nats-server is not installed");
            }
            eprintln!("skipped: nats-server is not installed");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let mut server = OwnServer {
            child: None,
            port,
            store: store.to_owned(),
            binary,
        };
        server.restart();
        Some(server)
    }

    /// The URL of this server.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL): clients see the connection drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store, and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}
