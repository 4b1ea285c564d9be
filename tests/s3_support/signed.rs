//! Requests to the test S3 server signed with its credentials, for what
//! the tests set up or inspect outside cairn: buckets with Object Lock, and
//! the retention of stored objects.

use bytes::Bytes;
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};

use super::{S3Server, ACCESS_KEY, SECRET_KEY};

/// Status, headers and body of an answer.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl S3Server {
    /// Sends a signed request for `path` (`/bucket/key?query`).
    /// Runs on a thread of its own, so async tests may call it too.
    pub fn signed(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.signed_here(method, path, headers, body))
                .join()
                .expect("the signed request thread")
        })
    }

    fn signed_here(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for a signed request");
        rt.block_on(async {
            let signer: Signer<Credential> = Signer::new(
                Context::new(),
                StaticCredentialProvider::new(ACCESS_KEY, SECRET_KEY),
                RequestSigner::new("s3", "us-east-1"),
            );
            let url = format!("{}{path}", self.endpoint);
            let mut builder = http::Request::builder().method(method).uri(&url);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            let host = url.split('/').nth(2).unwrap_or_default().to_owned();
            let req = builder
                .header("host", host)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .header("content-length", body.len().to_string())
                .body(Bytes::copy_from_slice(body))
                .expect("a valid request");
            let (mut parts, body) = req.into_parts();
            signer.sign(&mut parts, None).await.expect("signing");
            let req = reqwest::Request::try_from(http::Request::from_parts(parts, body)).expect("a reqwest request");
            let resp = reqwest::Client::new()
                .execute(req)
                .await
                .expect("the S3 server answers");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.text().await.unwrap_or_default();
            Answer { status, headers, body }
        })
    }

    /// Waits until the server reads `key` of `bucket` back: after a restart
    /// it answers before its volumes serve the data stored before.
    pub fn wait_readable(&self, bucket: &str, key: &str) {
        let started = std::time::Instant::now();
        loop {
            let a = self.signed("GET", &format!("/{bucket}/{key}"), &[], b"");
            if a.status == 200 {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{bucket}/{key} still unreadable after a minute: {} {}",
                a.status,
                a.body
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Creates a bucket with Object Lock (and so versioning) enabled.
    pub fn create_locked_bucket(&self, bucket: &str) {
        let a = self.signed(
            "PUT",
            &format!("/{bucket}"),
            &[("x-amz-bucket-object-lock-enabled", "true")],
            b"",
        );
        assert!(a.status < 300, "creating bucket {bucket}: {} {}", a.status, a.body);
    }

    /// The retain-until date of an object, as the server reports it.
    pub fn retain_until(&self, bucket: &str, key: &str) -> Option<String> {
        let a = self.signed("HEAD", &format!("/{bucket}/{key}"), &[], b"");
        assert_eq!(a.status, 200, "HEAD {bucket}/{key}");
        a.headers
            .get("x-amz-object-lock-retain-until-date")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Keys under `prefix` in `bucket` (current versions).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let a = self.signed("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), &[], b"");
        assert_eq!(a.status, 200, "listing {bucket}/{prefix}: {}", a.body);
        a.body
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}
