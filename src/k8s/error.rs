//! The errors of the Kubernetes layer. A failed API request keeps the
//! `kube::Error` as its source, so that a caller (a reconciler) can tell a
//! conflict or a throttled request from a refusal; the message stays one
//! line.

use crate::backup::BackupError;
use crate::forget::ForgetError;
use crate::repo::RepoError;
use crate::restore::RestoreError;
use crate::storage::open::OpenError;

/// Errors of manifest backup and restore.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The request never got an answer (connection refused, reset, timed
    /// out, TLS).
    #[error("cannot reach the Kubernetes API server at {server}: {reason}")]
    Unreachable {
        server: String,
        reason: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The server answered with an error, or the request failed otherwise.
    #[error("Kubernetes API server {server}: {what}: {reason}")]
    Api {
        server: String,
        what: String,
        reason: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Waited for the API server to show something that did not come.
    #[error("Kubernetes API server {server}: {what}: {reason}")]
    Timeout {
        server: String,
        what: String,
        reason: String,
    },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("snapshot file {path}: {reason}")]
    InvalidObject { path: String, reason: String },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Forget(#[from] ForgetError),
    #[error("repository work stopped: {0}")]
    Job(String),
    #[error(transparent)]
    RestoreWait(#[from] crate::k8s::restore_wait::RestoreWaitError),
}

/// HTTP statuses worth retrying: throttled, or the server (or a proxy in
/// front of it) failing for now.
const TRANSIENT_STATUS: [u16; 5] = [429, 500, 502, 503, 504];

impl K8sError {
    /// The error of request `what` (`GET Secret ns/name`) to `server`:
    /// `Api` when the server answered, `Unreachable` when it did not.
    pub fn request(server: &str, what: &str, e: kube::Error) -> Self {
        if kube_transient(&e) && !matches!(e, kube::Error::Api(_)) {
            Self::Unreachable {
                server: server.to_owned(),
                reason: format!("{what}: {}", chain(&e)),
                source: Box::new(e),
            }
        } else {
            Self::Api {
                server: server.to_owned(),
                what: what.to_owned(),
                reason: describe(&e),
                source: Box::new(e),
            }
        }
    }

    /// A bad option or filter, as opposed to a failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::InvalidOption(_))
    }

    /// The kube error of a failed request, if this is one (also the
    /// error's `source()`, boxed).
    pub fn kube_error(&self) -> Option<&kube::Error> {
        match self {
            Self::Unreachable { source, .. } | Self::Api { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The HTTP status the API server answered with, if it answered.
    pub fn status_code(&self) -> Option<u16> {
        match self.kube_error()? {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: throttling (429), server
    /// errors (500, 502, 503, 504), connections that failed or timed out.
    /// Other answers (400, 403, 404, 409, 422, ...) are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { source, .. } | Self::Api { source, .. } => kube_transient(source),
            Self::Open(OpenError::Unreachable { .. }) => true,
            Self::Open(OpenError::Storage(e)) => e.is_transient(),
            _ => false,
        }
    }

    /// Whether the server refused a write because the object changed
    /// meanwhile (409 Conflict): read it again and retry.
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// A short, stable name of the kind of error, for metrics labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kubeconfig(_) => "kubeconfig",
            Self::Unreachable { .. } => "unreachable",
            Self::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => match status.code {
                    400 | 422 => "invalid",
                    401 => "unauthorized",
                    403 => "forbidden",
                    404 => "not_found",
                    409 => "conflict",
                    429 => "throttled",
                    500..=599 => "server_error",
                    _ => "api_error",
                },
                e if kube_transient(e) => "unreachable",
                _ => "api_error",
            },
            Self::Timeout { .. } => "timeout",
            Self::InvalidOption(_) => "invalid_option",
            Self::InvalidObject { .. } => "invalid_object",
            Self::Runtime(_) => "runtime",
            Self::Backup(BackupError::Canceled) | Self::Restore(RestoreError::Canceled) => "canceled",
            Self::Backup(_) => "backup",
            Self::Repo(_) => "repository",
            Self::Restore(_) => "restore",
            Self::Open(_) => "storage",
            Self::Forget(_) => "forget",
            Self::Job(_) => "job",
            Self::RestoreWait(_) => "restore_wait",
        }
    }
}

/// An error and its sources as one line, repeated parts left out. Messages
/// that span lines (a YAML parser's, say) are joined into that line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        let text = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// What a failed request says, in one line: the API's status message, or
/// why the server could not be reached.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            let message = match (&status.message, &status.status) {
                (m, _) if !m.is_empty() => m.clone(),
                (_, Some(summary)) => format!("{summary:?}"),
                (_, None) => "no message".to_owned(),
            };
            format!("{} {}: {message}", status.code, status.reason)
        }
        other => chain(other),
    }
}

/// The HTTP status of a failed request, if the server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether a kube error is worth retrying.
fn kube_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => TRANSIENT_STATUS.contains(&status.code),
        // Connections refused or reset, timeouts (tower's), streams cut.
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use kube::core::Status;

    use super::*;

    fn api(code: u16) -> K8sError {
        let status = Status::failure("the object has been modified", "Conflict").with_code(code);
        K8sError::Api {
            server: "https://10.0.0.1:6443".into(),
            what: "PATCH backups.backup.cairn.io shop/nightly".into(),
            reason: format!("{code} Conflict: the object has been modified"),
            source: Box::new(kube::Error::Api(status.boxed())),
        }
    }

    fn unreachable() -> K8sError {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        K8sError::Unreachable {
            server: "https://10.0.0.1:6443".into(),
            reason: "connection refused".into(),
            source: Box::new(kube::Error::Service(Box::new(io))),
        }
    }

    #[test]
    fn status_codes_and_their_meaning() {
        for code in [429, 500, 502, 503, 504] {
            let e = api(code);
            assert_eq!(e.status_code(), Some(code));
            assert!(e.is_transient(), "{code}");
            assert!(!e.is_conflict());
        }
        for code in [400, 401, 403, 404, 409, 410, 422, 501] {
            assert!(!api(code).is_transient(), "{code}");
        }
        assert!(api(409).is_conflict());
        assert!(!api(403).is_conflict());
        let e = unreachable();
        assert_eq!(e.status_code(), None);
        assert!(e.is_transient());
        assert!(!e.is_conflict());
        assert!(!K8sError::InvalidOption("x".into()).is_transient());
        assert!(!K8sError::Kubeconfig("x".into()).is_transient());
    }

    #[test]
    fn the_source_is_kept_and_the_message_is_one_line() {
        let e = api(409);
        assert_eq!(
            e.to_string(),
            "Kubernetes API server https://10.0.0.1:6443: PATCH backups.backup.cairn.io shop/nightly: \
             409 Conflict: the object has been modified"
        );
        let source = e.source().expect("a source");
        let kube = e.kube_error().expect("the kube error");
        assert!(matches!(kube, kube::Error::Api(s) if s.code == 409));
        assert_eq!(source.to_string(), kube.to_string());
        let e = unreachable();
        assert_eq!(
            e.to_string(),
            "cannot reach the Kubernetes API server at https://10.0.0.1:6443: connection refused"
        );
        assert!(e.source().is_some());
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn metric_labels_are_short_and_stable() {
        assert_eq!(api(409).metric_label(), "conflict");
        assert_eq!(api(429).metric_label(), "throttled");
        assert_eq!(api(503).metric_label(), "server_error");
        assert_eq!(api(403).metric_label(), "forbidden");
        assert_eq!(api(404).metric_label(), "not_found");
        assert_eq!(api(418).metric_label(), "api_error");
        assert_eq!(unreachable().metric_label(), "unreachable");
        assert_eq!(K8sError::Kubeconfig("x".into()).metric_label(), "kubeconfig");
        assert_eq!(K8sError::from(BackupError::Canceled).metric_label(), "canceled");
        assert_eq!(K8sError::from(RestoreError::Canceled).metric_label(), "canceled");
        assert_eq!(K8sError::Job("x".into()).metric_label(), "job");
    }
}
