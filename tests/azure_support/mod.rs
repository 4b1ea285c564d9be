//! An Azure Blob server on 127.0.0.1 for tests: Azurite, from the npm
//! package `azurite` (`.ci/run` installs it; `CAIRN_AZURITE` may name the
//! `azurite-blob` script, otherwise it is looked up on the PATH). Azurite
//! checks Shared Key signatures against its well-known development account.
//! Without it the tests fail, saying so.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's development account and its published key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// `KEY`, decoded.
const KEY_HEX: &str = "11bcbcbdd334db134e72a165a94c093cb96612d9420d7275394cc54f9d2e49167a205b2e16ad94544ac2cf823ab6afcad526453d33adaff2811c17a4b2818c1b";

pub struct AzuriteServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// `http://127.0.0.1:PORT/devstoreaccount1`
    pub endpoint: String,
}

fn binary() -> PathBuf {
    let hint = "the Azure tests need Azurite: `npm install -g azurite` (as .ci/run does) or set CAIRN_AZURITE \
                to its azurite-blob script";
    if let Some(p) = std::env::var_os("CAIRN_AZURITE") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CAIRN_AZURITE={} is not a file; {hint}", p.display());
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("azurite-blob"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{hint}"))
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl AzuriteServer {
    /// A server with these containers.
    pub fn with_containers(containers: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port on 127.0.0.1");
            l.local_addr().expect("local address of a bound port").port()
        };
        let log = std::fs::File::create(dir.path().join("azurite.log")).expect("server log");
        let log2 = log.try_clone().expect("server log");
        let child = Command::new(binary())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("running azurite-blob: {e}"));
        let mut server = Self {
            child,
            dir,
            port,
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        };
        let started = Instant::now();
        while !server.log().contains("successfully listens") {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("azurite-blob exited with {status}: {}", server.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Azurite did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in containers {
            server.create_container(c);
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
    }

    /// Creates a container with a Shared Key signed request (cairn itself
    /// never creates containers).
    fn create_container(&self, name: &str) {
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let key_bytes = hex::decode(KEY_HEX).expect("the account key");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
        let signature = base64(aws_lc_rs::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connecting to Azurite");
        write!(
            s,
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.0\r\nHost: 127.0.0.1\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("asking Azurite");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("reading Azurite's answer");
        assert!(
            response.starts_with("HTTP/1.1 201") || response.starts_with("HTTP/1.0 201"),
            "creating container {name}: {response}"
        );
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&hex::decode(KEY_HEX).unwrap()), KEY);
}
