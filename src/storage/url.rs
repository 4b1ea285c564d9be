//! Repository locations: a local path or an object store URL, plus the
//! `-o key=value` options that tune an object store.
//!
//! ```text
//! /backups/repo                 a local directory
//! s3://bucket/prefix            Amazon S3 or any S3-compatible store
//! gs://bucket/prefix            Google Cloud Storage
//! azblob://container/prefix     Azure Blob Storage
//! ```
//!
//! Parsing is pure: nothing here reads the environment or the network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// An object store service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Gcs,
    Azblob,
}

impl Service {
    /// The URL scheme, which is also the prefix of the service's options.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azblob => "azblob",
        }
    }

    /// What the service calls the top-level namespace of a URL.
    pub fn bucket_word(self) -> &'static str {
        match self {
            Self::Azblob => "container",
            _ => "bucket",
        }
    }

    /// Option keys (after the `scheme.` prefix) this service accepts.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::S3 => &["endpoint", "region", "path-style", "storage-class"],
            Self::Gcs => &["endpoint", "credentials-file", "storage-class", "anonymous"],
            Self::Azblob => &["endpoint", "account"],
        }
    }
}

/// A bucket (or container) and a prefix inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    pub service: Service,
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.service.scheme(), self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Object(ObjectLocation),
}

/// A location or an option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("repository URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("option -o {option:?}: {reason}")]
    Option { option: String, reason: String },
}

fn bad_url(url: &str, reason: impl Into<String>) -> UrlError {
    UrlError::Url {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

/// Parses `-r`: a URL when it has a `scheme://`, a local path otherwise.
pub fn parse_location(s: &str) -> Result<Location, UrlError> {
    if s.is_empty() {
        return Err(bad_url(s, "empty"));
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(Location::Local(PathBuf::from(s)));
    };
    let service = match scheme.to_ascii_lowercase().as_str() {
        "s3" => Service::S3,
        "gs" | "gcs" => Service::Gcs,
        "azblob" | "az" => Service::Azblob,
        "file" => return Ok(Location::Local(PathBuf::from(rest))),
        other => {
            return Err(bad_url(
                s,
                format!("unknown scheme {other}://; use s3://, gs://, azblob:// or a local path"),
            ))
        }
    };
    if rest.contains(['?', '#']) {
        return Err(bad_url(
            s,
            "query strings and fragments are not allowed; use -o key=value",
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(service, bucket).map_err(|reason| bad_url(s, reason))?;
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
        && !prefix.is_empty()
    {
        return Err(bad_url(s, "the prefix has an empty, `.` or `..` part"));
    }
    if prefix.chars().any(|c| c.is_control()) {
        return Err(bad_url(s, "the prefix has a control character"));
    }
    Ok(Location::Object(ObjectLocation {
        service,
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    }))
}

/// The naming rules the services share: 3 to 63 lowercase letters, digits,
/// `-` (and `.` or `_` where the service allows), starting and ending with a
/// letter or digit.
fn check_bucket(service: Service, bucket: &str) -> Result<(), String> {
    let word = service.bucket_word();
    if bucket.is_empty() {
        return Err(format!(
            "no {word} name (expected {}://{word}/prefix)",
            service.scheme()
        ));
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("{word} name {bucket:?} must have 3 to 63 characters"));
    }
    let allowed = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c == '-'
            || (c == '.' && service != Service::Azblob)
            || (c == '_' && service == Service::Gcs)
    };
    if let Some(c) = bucket.chars().find(|c| !allowed(*c)) {
        return Err(format!("{word} name {bucket:?} has the character {c:?}"));
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge(bucket.chars().next()) || !edge(bucket.chars().last()) {
        return Err(format!(
            "{word} name {bucket:?} must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Options from `-o key=value`, checked against the service they tune.
///
/// Keys are `<scheme>.<name>` (`s3.endpoint`, `gs.credentials-file`,
/// `azblob.account`, …) or `timeout`, which applies to every service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    values: BTreeMap<String, String>,
    /// Variables read instead of the process environment (credentials of
    /// one repository among several in one process); `None` reads the
    /// process environment.
    environment: Option<Environment>,
}

/// Environment variables given to one repository's storage rather than
/// taken from the process: `AWS_ACCESS_KEY_ID`, `AZURE_STORAGE_KEY`, ...
/// Their values are never shown.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment(BTreeMap<String, String>);

impl Environment {
    pub fn new(vars: BTreeMap<String, String>) -> Self {
        Self(vars)
    }

    /// A variable's value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Default limit on one request (and on each read or write step of a
/// transfer) before it is abandoned as a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl StorageOptions {
    /// Parses `key=value` pairs; a key given twice keeps its last value.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Self, UrlError> {
        let mut values = BTreeMap::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let Some((key, value)) = pair.split_once('=') else {
                return Err(UrlError::Option {
                    option: pair.to_owned(),
                    reason: "expected key=value".into(),
                });
            };
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(UrlError::Option {
                    option: pair.to_owned(),
                    reason: "empty key".into(),
                });
            }
            values.insert(key, value.trim().to_owned());
        }
        Ok(Self {
            values,
            environment: None,
        })
    }

    /// These options with `environment` read instead of the process's.
    pub fn with_environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Whether an environment was given in place of the process's.
    pub fn has_environment(&self) -> bool {
        self.environment.is_some()
    }

    /// An environment variable as the storage sees it: from the given
    /// environment when there is one, else from the process; empty values
    /// count as unset.
    pub fn env(&self, name: &str) -> Option<String> {
        match &self.environment {
            Some(e) => e.get(name).map(str::to_owned),
            None => std::env::var(name).ok().filter(|v| !v.is_empty()),
        }
    }

    /// Checks that every key is known for `service` (or for none when the
    /// repository is local, where no option applies) and every value parses.
    pub fn validate(&self, service: Option<Service>) -> Result<(), UrlError> {
        for (key, value) in &self.values {
            let bad = |reason: String| UrlError::Option {
                option: format!("{key}={value}"),
                reason,
            };
            if key == "timeout" {
                humantime::parse_duration(value)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("expected a duration such as 30s or 2m".into()))?;
                continue;
            }
            let Some(service) = service else {
                return Err(bad("object store options do not apply to a local repository".into()));
            };
            let (scheme, name) = key.split_once('.').unwrap_or(("", key));
            if scheme != service.scheme() || !service.keys().contains(&name) {
                let known: Vec<String> = service
                    .keys()
                    .iter()
                    .map(|k| format!("{}.{k}", service.scheme()))
                    .chain(["timeout".to_owned()])
                    .collect();
                return Err(bad(format!(
                    "unknown option for a {}:// repository (known: {})",
                    service.scheme(),
                    known.join(", ")
                )));
            }
            if value.is_empty() {
                return Err(bad("empty value".into()));
            }
            if matches!(name, "path-style" | "anonymous") && parse_bool(value).is_none() {
                return Err(bad("expected true or false".into()));
            }
            if name == "endpoint" && !(value.starts_with("http://") || value.starts_with("https://")) {
                return Err(bad("the endpoint must start with http:// or https://".into()));
            }
        }
        Ok(())
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A boolean option (`true/false/yes/no/1/0/on/off`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }

    /// The `timeout` option, or [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.get("timeout")
            .and_then(|v| humantime::parse_duration(v).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Whether no option was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(s: &str) -> ObjectLocation {
        match parse_location(s) {
            Ok(Location::Object(o)) => o,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn local_paths_stay_local() {
        assert_eq!(
            parse_location("/backups/repo"),
            Ok(Location::Local(PathBuf::from("/backups/repo")))
        );
        assert_eq!(parse_location("rel/dir"), Ok(Location::Local(PathBuf::from("rel/dir"))));
        assert_eq!(
            parse_location("file:///srv/repo"),
            Ok(Location::Local(PathBuf::from("/srv/repo")))
        );
    }

    #[test]
    fn object_urls_split_bucket_and_prefix() {
        let o = object("s3://my-bucket/a/b/");
        assert_eq!(
            (o.service, o.bucket.as_str(), o.prefix.as_str()),
            (Service::S3, "my-bucket", "a/b")
        );
        assert_eq!(o.to_string(), "s3://my-bucket/a/b");
        let o = object("gs://bkt");
        assert_eq!((o.service, o.prefix.as_str()), (Service::Gcs, ""));
        assert_eq!(o.to_string(), "gs://bkt");
        assert_eq!(object("azblob://backups/x").service, Service::Azblob);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, needle) in [
            ("ftp://host/x", "unknown scheme ftp://"),
            ("s3://", "no bucket name"),
            ("s3:///prefix", "no bucket name"),
            ("s3://ab", "3 to 63"),
            ("s3://Upper", "character 'U'"),
            ("s3://-bucket", "start and end"),
            ("azblob://a.b.c", "character '.'"),
            ("s3://bucket/a//b", "empty"),
            ("s3://bucket/a/../b", "`..`"),
            ("s3://bucket/x?region=eu", "query"),
            ("", "empty"),
        ] {
            let err = parse_location(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains(&format!("{url:?}")), "{url}: {err}");
        }
    }

    #[test]
    fn options_are_checked_against_the_service() {
        let o = StorageOptions::parse(&["s3.endpoint=http://127.0.0.1:9000", "s3.path-style=false"]).unwrap();
        o.validate(Some(Service::S3)).unwrap();
        assert_eq!(o.get("s3.endpoint"), Some("http://127.0.0.1:9000"));
        assert_eq!(o.get_bool("s3.path-style"), Some(false));
        assert_eq!(o.timeout(), DEFAULT_TIMEOUT);

        let err = o.validate(Some(Service::Gcs)).unwrap_err().to_string();
        assert!(
            err.contains("s3.endpoint") && err.contains("gs.credentials-file"),
            "{err}"
        );
        let err = o.validate(None).unwrap_err().to_string();
        assert!(err.contains("local repository"), "{err}");

        for (pair, needle) in [
            ("novalue", "key=value"),
            ("=x", "empty key"),
            ("s3.path-style=maybe", "true or false"),
            ("s3.endpoint=127.0.0.1:9000", "http://"),
            ("s3.colour=blue", "unknown option"),
            ("timeout=soon", "duration"),
            ("timeout=0s", "duration"),
        ] {
            let err = StorageOptions::parse(&[pair])
                .and_then(|o| o.validate(Some(Service::S3)))
                .expect_err(pair)
                .to_string();
            assert!(err.contains(needle), "{pair}: {err}");
        }
        let t = StorageOptions::parse(&["timeout=5s"]).unwrap();
        t.validate(None).unwrap();
        assert_eq!(t.timeout(), Duration::from_secs(5));
    }
}
