//! Trying a restore's writes again, per object.
//!
//! Two layers retry, each what the other does not, so that no request is
//! tried at both: the client ([`crate::k8s::retry`]) retries 429 (after its
//! `Retry-After`), 503 and 504 for every request, and 500, 502 and requests
//! that got no answer for reads; here a write (create, update, patch) that
//! got another server error (500, 502 and any 5xx but 503 and 504) or no
//! answer (a dropped or refused connection) is tried [`TRIES`] times in
//! all, waiting [`FIRST_WAIT`] and doubling up to [`MAX_WAIT`]; a create
//! answered 409 after such a try is checked for this restore's label. Reads
//! are not wrapped here. What still fails fails that object only; the
//! restore goes on, and stops only when [`GONE_AFTER`] objects in a row got
//! no answer at all: then the server is taken to be gone.

use std::future::Future;
use std::time::Duration;

use super::restore::ObjectResult;
use crate::k8s::client::{chain, status_code};
use crate::k8s::K8sError;

/// Tries of one request, the first included.
pub const TRIES: u32 = 4;
/// The wait before the second try; it doubles up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_millis(200);
pub const MAX_WAIT: Duration = Duration::from_secs(2);
/// Objects in a row whose requests got no answer, after which the restore
/// stops: the server is gone.
pub const GONE_AFTER: u32 = 3;

/// Whether a failed request got no answer from the server (as opposed to
/// the server refusing it).
pub fn lost(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_) | kube::Error::SerdeError(_))
}

/// Whether a failed request is tried again here: a server error the
/// client's own retries leave alone, or no answer.
pub fn retryable(e: &kube::Error) -> bool {
    match status_code(e) {
        Some(code) => (500..600).contains(&code) && code != 503 && code != 504,
        None => lost(e),
    }
}

/// Objects in a row whose requests got no answer.
#[derive(Debug, Default)]
pub struct Unanswered {
    /// `resource namespace/name` of each.
    objects: Vec<String>,
}

impl Unanswered {
    /// Notes how the object just handled (the `handled`th of `total`,
    /// reported as `last`) went: `lost` is the error of a request of it
    /// that got no answer. Returns the error that ends the restore once
    /// [`GONE_AFTER`] objects in a row got none.
    pub fn note(
        &mut self,
        lost: Option<kube::Error>,
        last: Option<&ObjectResult>,
        handled: usize,
        total: usize,
        server: &str,
    ) -> Option<K8sError> {
        let Some(e) = lost else {
            self.objects.clear();
            return None;
        };
        let name = last.map_or_else(String::new, |r| match &r.namespace {
            Some(ns) => format!("{} {ns}/{}", r.resource, r.name),
            None => format!("{} {}", r.resource, r.name),
        });
        self.objects.push(name);
        if self.objects.len() < GONE_AFTER as usize {
            return None;
        }
        Some(K8sError::Unreachable {
            server: server.to_owned(),
            reason: format!(
                "{} objects in a row got no answer ({}), the restore stopped after {handled} of {total} objects: {}",
                self.objects.len(),
                self.objects.join(", "),
                chain(&e)
            ),
            source: Box::new(e),
        })
    }
}

/// The result of a request and whether an earlier try of it may have
/// reached the server (so that a create answered 409 may be its own).
pub struct Attempt<T> {
    pub result: Result<T, kube::Error>,
    pub retried: bool,
}

/// Runs `request` until it succeeds, fails in a way not worth retrying,
/// or has been tried [`TRIES`] times.
pub async fn attempt<T, F, Fut>(mut request: F) -> Attempt<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut wait = FIRST_WAIT;
    let mut tries = 1;
    loop {
        let result = request().await;
        match &result {
            Err(e) if retryable(e) && tries < TRIES => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
                tries += 1;
            }
            _ => {
                return Attempt {
                    result,
                    retried: tries > 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("m", "r").with_code(code).boxed())
    }

    #[test]
    fn only_what_the_client_does_not_retry_is_retried_here() {
        for code in [500, 502, 507] {
            assert!(retryable(&api(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 422, 429, 503, 504] {
            assert!(!retryable(&api(code)), "{code}");
        }
        let dropped = kube::Error::Service("connection closed before message completed".into());
        assert!(lost(&dropped) && retryable(&dropped));
        assert!(!lost(&api(500)));
    }

    #[tokio::test]
    async fn a_request_is_tried_a_bounded_number_of_times() {
        let mut calls = 0;
        let a: Attempt<()> = attempt(|| {
            calls += 1;
            async { Err(api(500)) }
        })
        .await;
        assert_eq!(calls, TRIES);
        assert!(a.retried && a.result.is_err());
        let mut calls = 0;
        let a = attempt(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(api(502))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(a.result.unwrap(), 3);
        let mut calls = 0;
        let a: Attempt<()> = attempt(|| {
            calls += 1;
            async { Err(api(422)) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(!a.retried);
    }
}
