//! S3 Object Lock: the requests opendal does not make.
//!
//! A repository created with an object lock writes every object but lock
//! files with a retention (`x-amz-object-lock-mode` and
//! `x-amz-object-lock-retain-until-date` on the put itself, so no object is
//! ever stored unprotected), reads an object's retention with a HEAD
//! request, extends it with PutObjectRetention, and asks whether a bucket
//! has Object Lock enabled. Requests are signed with AWS SigV4 using the
//! same credential chain as opendal's S3 service: the given keys, else the
//! environment, profile files, web identity and instance metadata.
//!
//! Object Lock needs a versioned bucket. A plain delete of a locked object
//! only hides it behind a delete marker; the locked version stays until its
//! retention ends (a lifecycle rule that expires noncurrent versions frees
//! the space afterwards).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use md5::Digest as _;
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};

use super::object::AccessKeys;
use super::{FileKind, Retention, StorageError};

/// Where and how to reach the bucket.
pub struct S3LockConfig<'a> {
    /// `scheme://host[:port]`, or `None` for AWS in `region`.
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub bucket: &'a str,
    /// The repository's prefix in the bucket, without slashes at either end.
    pub prefix: &'a str,
    pub path_style: bool,
    pub keys: Option<&'a AccessKeys>,
    pub no_imds: bool,
    /// Storage class for packs.
    pub pack_class: Option<&'a str>,
}

/// Signed Object Lock requests to one bucket.
pub struct S3Lock {
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// Base URL of the bucket, without a trailing slash.
    base: String,
    /// Key prefix of the repository, empty or ending in `/`.
    root: String,
    pack_class: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for S3Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Lock")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The HTTP client reqsign uses to fetch credentials (STS, instance
/// metadata).
#[derive(Debug)]
struct SendWith(reqwest::Client);

impl reqsign_core::HttpSend for SendWith {
    async fn http_send(&self, req: http::Request<Bytes>) -> reqsign_core::Result<http::Response<Bytes>> {
        let req = reqwest::Request::try_from(req)
            .map_err(|e| reqsign_core::Error::unexpected(format!("building a credential request: {e}")))?;
        let resp = self
            .0
            .execute(req)
            .await
            .map_err(|e| reqsign_core::Error::unexpected(format!("requesting credentials: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| reqsign_core::Error::unexpected(format!("reading credentials: {e}")))?;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// What a HEAD request says about an object's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    /// Retain-until time in Unix seconds, if the object has a retention.
    pub until: Option<i64>,
}

/// An answer from the store.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2026-11-23T06:10:23Z` for Unix seconds.
pub fn iso8601(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn parse_time(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.timestamp())
}

fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), StorageError> {
    let value = HeaderValue::from_str(value).map_err(|e| StorageError::Backend {
        message: format!("header {name}: {e}"),
        transient: false,
    })?;
    Ok((HeaderName::from_static(name), value))
}

fn mode(retention: Retention) -> &'static str {
    if retention.compliance {
        "COMPLIANCE"
    } else {
        "GOVERNANCE"
    }
}

/// The S3 error code of an XML error body, if there is one.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

impl S3Lock {
    pub fn new(client: reqwest::Client, cfg: &S3LockConfig<'_>, timeout: Duration) -> Self {
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_http_send(SendWith(client.clone()))
            .with_env(OsEnv);
        let mut defaults = DefaultCredentialProvider::builder();
        if cfg.no_imds {
            defaults = defaults.no_imds();
        }
        let mut chain = ProvideCredentialChain::new().push(defaults.build());
        if let Some(k) = cfg.keys {
            let mut fixed = StaticCredentialProvider::new(&k.access_key_id, &k.secret_access_key);
            if let Some(token) = &k.session_token {
                fixed = fixed.with_session_token(token);
            }
            chain = chain.push_front(fixed);
        }
        let signer = Signer::new(ctx, chain, RequestSigner::new("s3", cfg.region));
        let endpoint = cfg
            .endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", cfg.region));
        let base = if cfg.path_style {
            format!("{endpoint}/{}", cfg.bucket)
        } else {
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", cfg.bucket),
                None => format!("https://{}.{endpoint}", cfg.bucket),
            }
        };
        let prefix = cfg.prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Self {
            client,
            signer,
            base,
            root,
            pack_class: cfg.pack_class.map(str::to_owned),
            timeout,
        }
    }

    fn url(&self, key: &str, query: &str) -> String {
        let path = percent_encode_path(&format!("{}{key}", self.root));
        if query.is_empty() {
            format!("{}/{path}", self.base)
        } else {
            format!("{}/{path}?{query}", self.base)
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        doing: &str,
    ) -> Result<Answer, StorageError> {
        let failed = |message: String, transient: bool| StorageError::Backend {
            message: format!("{doing}: {message}"),
            transient,
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(url)
            .body(body.clone())
            .map_err(|e| failed(format!("bad request {url}: {e}"), false))?;
        let host = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let h = req.headers_mut();
        for (name, value) in headers {
            h.insert(name, value);
        }
        h.insert(http::header::HOST, header("host", &host)?.1);
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        h.insert(
            HeaderName::from_static("x-amz-content-sha256"),
            HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
        let (mut parts, body) = req.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| failed(format!("signing: {e}"), false))?;
        let mut req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|e| failed(format!("bad request {url}: {e}"), false))?;
        // One second per MiB on top of the timeout, for large puts.
        *req.timeout_mut() = Some(self.timeout + Duration::from_secs((req_len(&req) >> 20) as u64));
        let resp = self.client.execute(req).await.map_err(|e| {
            let transient = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
            failed(crate::storage::object::root_cause(&e), transient)
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| failed(crate::storage::object::root_cause(&e), true))?;
        Ok(Answer { status, headers, body })
    }

    fn refused(doing: &str, answer: &Answer) -> StorageError {
        let code = error_code(&answer.body).unwrap_or_else(|| answer.status.to_string());
        let transient = answer.status.is_server_error() || answer.status == StatusCode::TOO_MANY_REQUESTS;
        StorageError::Backend {
            message: format!("{doing}: the store answered {} ({code})", answer.status.as_u16()),
            transient,
        }
    }

    /// Fails unless the bucket has Object Lock enabled.
    pub async fn check_enabled(&self, location: &str) -> Result<(), StorageError> {
        let url = format!("{}/?object-lock", self.base);
        let doing = format!("asking {location} for its object lock configuration");
        let answer = self.send(Method::GET, &url, Vec::new(), Bytes::new(), &doing).await?;
        let enabled = answer.status.is_success()
            && std::str::from_utf8(&answer.body)
                .is_ok_and(|t| t.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>"));
        if enabled {
            return Ok(());
        }
        if answer.status.is_success()
            || answer.status == StatusCode::NOT_FOUND
            || error_code(&answer.body).is_some_and(|c| c.contains("ObjectLockConfigurationNotFound"))
        {
            return Err(StorageError::NoObjectLock {
                location: location.to_owned(),
                reason: "the bucket does not have Object Lock enabled (it can only be turned on for a bucket \
                         with versioning)"
                    .into(),
            });
        }
        Err(Self::refused(&doing, &answer))
    }

    /// Stores a new object (never replacing one) locked until `until`.
    pub async fn put(
        &self,
        kind: FileKind,
        name: &str,
        data: Bytes,
        retention: Retention,
        until: i64,
    ) -> Result<(), StorageError> {
        let doing = format!("storing {kind} {name} under object lock");
        let mut headers = vec![
            header("content-md5", &content_md5(&data))?,
            header("if-none-match", "*")?,
            header("x-amz-object-lock-mode", mode(retention))?,
            header("x-amz-object-lock-retain-until-date", &iso8601(until))?,
        ];
        if kind == FileKind::Pack {
            if let Some(class) = &self.pack_class {
                headers.push(header("x-amz-storage-class", class)?);
            }
        }
        let url = self.url(&kind.path(name), "");
        let answer = self.send(Method::PUT, &url, headers, data, &doing).await?;
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(StorageError::AlreadyExists {
                kind,
                name: name.to_owned(),
            }),
            _ => Err(Self::refused(&doing, &answer)),
        }
    }

    /// The object's lock, from a HEAD request.
    pub async fn state(&self, kind: FileKind, name: &str) -> Result<LockState, StorageError> {
        let doing = format!("reading the object lock of {kind} {name}");
        let url = self.url(&kind.path(name), "");
        let answer = self.send(Method::HEAD, &url, Vec::new(), Bytes::new(), &doing).await?;
        match answer.status {
            s if s.is_success() => Ok(LockState {
                until: answer
                    .headers
                    .get("x-amz-object-lock-retain-until-date")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_time),
            }),
            StatusCode::NOT_FOUND => Err(StorageError::NotFound {
                kind,
                name: name.to_owned(),
            }),
            _ => Err(Self::refused(&doing, &answer)),
        }
    }

    /// Sets the object's retention to `until` (which the store refuses if
    /// it would shorten a compliance lock).
    pub async fn extend(
        &self,
        kind: FileKind,
        name: &str,
        retention: Retention,
        until: i64,
    ) -> Result<(), StorageError> {
        let doing = format!("extending the object lock of {kind} {name}");
        let body = Bytes::from(format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode(retention),
            iso8601(until)
        ));
        let headers = vec![
            header("content-md5", &content_md5(&body))?,
            header("content-type", "application/xml")?,
        ];
        let url = self.url(&kind.path(name), "retention");
        let answer = self.send(Method::PUT, &url, headers, body, &doing).await?;
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(StorageError::NotFound {
                kind,
                name: name.to_owned(),
            }),
            _ => Err(Self::refused(&doing, &answer)),
        }
    }
}

fn req_len(req: &reqwest::Request) -> usize {
    req.body().and_then(reqwest::Body::as_bytes).map_or(0, <[u8]>::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_and_read_in_iso_8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_414_223), "2026-11-23T06:10:23Z");
        assert_eq!(parse_time("2026-11-23T06:10:23Z"), Some(1_795_414_223));
        assert_eq!(parse_time("2026-11-23T06:10:23.000Z"), Some(1_795_414_223));
        assert_eq!(parse_time("tomorrow"), None);
    }

    #[test]
    fn keys_are_percent_encoded_except_for_slashes() {
        assert_eq!(percent_encode_path("a b/c+d/e_f.g"), "a%20b/c%2Bd/e_f.g");
    }

    #[test]
    fn error_codes_come_from_the_xml_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("AccessDenied"));
        assert_eq!(error_code(b"plain"), None);
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321's test vector for "abc".
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }
}
