//! The client's retry policy: every request that the API server throttled
//! or could not serve for now is tried again, a few times, by the client
//! itself, so that one busy moment of the server does not end a backup's
//! list or a restore's create. Callers do not retry these again.
//!
//! - 429 (with its `Retry-After`), 503 and 504: any request; the server
//!   did not act on it.
//! - 500 and 502, and a request that got no answer (connection refused or
//!   dropped, timed out): reads only (GET, HEAD), as a write may have been
//!   done before the answer was lost.

use std::time::{Duration, SystemTime};

use http::{Method, Request, Response};
use kube::client::Body;
use tower::retry::Policy;
use tower::BoxError;

/// How often a request is tried again, and the first and the longest wait
/// between tries (a `Retry-After` is honoured within them). kube's own
/// default tries 15 times with waits growing to minutes, so one aggregated
/// API whose server is down (a common state of `metrics.k8s.io`) held a
/// backup's discovery for four minutes; five tries over about three
/// seconds ride out a busy server without that.
pub const RETRIES: u32 = 5;
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// What came back, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status, and the `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// No answer.
    Failed,
}

/// The retry policy of one request (tower clones it for each).
#[derive(Debug, Clone, Default)]
pub struct Transient {
    attempts: u32,
}

impl Transient {
    /// How long to wait before the next try, or None to give up.
    pub fn delay(&mut self, method: &Method, outcome: Outcome) -> Option<Duration> {
        if self.attempts >= RETRIES {
            return None;
        }
        let read = matches!(*method, Method::GET | Method::HEAD);
        let retry_after = match outcome {
            Outcome::Status(429 | 503 | 504, after) => after,
            Outcome::Status(500 | 502, _) | Outcome::Failed if read => None,
            _ => return None,
        };
        let backoff = RETRY_FIRST.saturating_mul(1 << self.attempts.min(16)).min(RETRY_MAX);
        self.attempts += 1;
        // Up to a quarter more, so that clients throttled together do not
        // come back together.
        let spread = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let backoff = backoff + backoff.mul_f64(f64::from(spread % 1000) / 4000.0);
        let wait = match retry_after {
            Some(secs) => backoff.max(Duration::from_secs(secs)),
            None => backoff,
        };
        Some(wait.min(RETRY_MAX))
    }

    /// The number of tries made again so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

fn outcome<Res>(result: &Result<Response<Res>, BoxError>) -> Outcome {
    match result {
        Ok(response) => {
            let after = response
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            Outcome::Status(response.status().as_u16(), after)
        }
        Err(_) => Outcome::Failed,
    }
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for Transient {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Request<Body>, result: &mut Result<Response<Res>, BoxError>) -> Option<Self::Future> {
        self.delay(req.method(), outcome(result)).map(tokio::time::sleep)
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Only bodies held whole can be sent again (not streams).
        let body = req.body().try_clone()?;
        let mut copy = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_retried_for_every_request_and_honours_retry_after() {
        let mut p = Transient::default();
        let wait = p.delay(&Method::POST, Outcome::Status(429, Some(2))).unwrap();
        assert!(wait >= Duration::from_secs(2) && wait <= RETRY_MAX, "{wait:?}");
        assert!(p.delay(&Method::PUT, Outcome::Status(503, None)).is_some());
        // A Retry-After beyond the longest wait is cut to it.
        let wait = p.delay(&Method::GET, Outcome::Status(429, Some(3600))).unwrap();
        assert_eq!(wait, RETRY_MAX);
    }

    #[test]
    fn server_errors_and_lost_answers_are_retried_for_reads_only() {
        let mut p = Transient::default();
        assert!(p.delay(&Method::GET, Outcome::Status(500, None)).is_some());
        assert!(p.delay(&Method::GET, Outcome::Failed).is_some());
        assert!(p.delay(&Method::GET, Outcome::Status(502, None)).is_some());
        assert!(p.delay(&Method::POST, Outcome::Status(500, None)).is_none());
        assert!(p.delay(&Method::DELETE, Outcome::Failed).is_none());
        for code in [400, 403, 404, 409, 410, 422] {
            assert!(p.delay(&Method::GET, Outcome::Status(code, None)).is_none(), "{code}");
        }
    }

    #[test]
    fn gives_up_after_the_last_try_with_growing_waits() {
        let mut p = Transient::default();
        let mut last = Duration::ZERO;
        for _ in 0..RETRIES {
            let wait = p.delay(&Method::GET, Outcome::Failed).unwrap();
            assert!(wait <= RETRY_MAX);
            assert!(wait >= last.min(RETRY_MAX) / 2, "{wait:?} after {last:?}");
            last = wait;
        }
        assert_eq!(p.attempts(), RETRIES);
        assert!(p.delay(&Method::GET, Outcome::Failed).is_none());
    }
}
