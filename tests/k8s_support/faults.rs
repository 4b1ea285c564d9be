//! Faults aimed at some requests: the next `n` requests of a method whose
//! path contains a text answer with a status code (429 with `Retry-After`,
//! as the real server's priority and fairness does, or a 5xx), or get no
//! answer at all (the connection is dropped, as when a load balancer in
//! front of the API server resets it).

use super::FakeCluster;

/// What a faulted request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// This status code, as a `Status` object.
    Status(u16),
    /// The connection closes without an answer.
    Drop,
}

/// One aimed fault.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub path_contains: String,
    pub remaining: u32,
    pub kind: FaultKind,
}

impl super::State {
    /// The fault for this request, if one is aimed at it (counting it).
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<FaultKind> {
        let fault = self
            .faults
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == method && path.contains(&f.path_contains))?;
        fault.remaining -= 1;
        let kind = fault.kind;
        self.faults.retain(|f| f.remaining > 0);
        Some(kind)
    }
}

impl FakeCluster {
    /// The next `n` `method` requests whose path contains `path_contains`
    /// answer `code`.
    pub fn fail_requests(&self, method: &str, path_contains: &str, n: u32, code: u16) {
        self.aim(method, path_contains, n, FaultKind::Status(code));
    }

    /// The next `n` `method` requests whose path contains `path_contains`
    /// get no answer: their connection is dropped.
    pub fn drop_requests(&self, method: &str, path_contains: &str, n: u32) {
        self.aim(method, path_contains, n, FaultKind::Drop);
    }

    fn aim(&self, method: &str, path_contains: &str, n: u32, kind: FaultKind) {
        self.state().faults.push(Fault {
            method: method.to_owned(),
            path_contains: path_contains.to_owned(),
            remaining: n,
            kind,
        });
    }
}
