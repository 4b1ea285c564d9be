//! What the fake API server does to one client's requests beyond serving
//! them: a user whose RBAC rights end at some namespaces (403 for every
//! cluster-wide request and for other namespaces, as the real server's
//! authorizer answers), failures aimed at requests whose path contains a
//! string, connections dropped without an answer, and continue tokens
//! that have expired.
//!
//! A list's continue token names the resourceVersion the list started at
//! and the offset reached (`RV:OFFSET`). Like the real server (whose
//! token is only good while etcd still holds that revision), the fake
//! answers `410 Gone` with reason `Expired` to a token older than the last
//! compaction ([`FakeCluster::compact`](super::FakeCluster::compact)), and
//! to the next `n` tokens after [`State::expire_continue`].

use std::collections::BTreeSet;

use hyper::Method;
use serde_json::Value;

use super::{status, ResDef, State};

type Query = std::collections::BTreeMap<String, String>;

/// Requests answered by the test, not the store.
#[derive(Debug, Default)]
pub struct Access {
    /// Some: the user may only work inside these namespaces.
    pub namespaces: Option<BTreeSet<String>>,
    /// (path substring, requests left, status code).
    pub failing: Vec<(String, u32, u16)>,
    /// (path substring, requests left): the connection closes unanswered.
    pub dropping: Vec<(String, u32, ())>,
    /// Continue tokens that expire regardless of their age.
    pub expire_continue: u32,
}

/// The verb an authorizer sees for a request.
pub fn verb(method: &Method, name: Option<&str>, q: &Query) -> &'static str {
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    match (method.clone(), name) {
        (Method::GET, _) if watch => "watch",
        (Method::GET, Some(_)) => "get",
        (Method::GET, None) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, Some(_)) => "delete",
        (Method::DELETE, None) => "deletecollection",
        _ => "unknown",
    }
}

/// Takes one from the first matching (path substring, count) entry.
fn take<T: Copy>(entries: &mut Vec<(String, u32, T)>, path: &str) -> Option<T> {
    let i = entries
        .iter()
        .position(|(p, n, _)| *n > 0 && path.contains(p.as_str()))?;
    entries[i].1 -= 1;
    let value = entries[i].2;
    entries.retain(|(_, n, _)| *n > 0);
    Some(value)
}

/// A continue token: the resourceVersion its list started at and the
/// offset of the next page.
pub fn continue_token(rv: u64, offset: usize) -> String {
    format!("{rv}:{offset}")
}

impl State {
    /// Makes the user a namespace-scoped one: allowed in `namespaces` only.
    pub fn allow_only_namespaces(&mut self, namespaces: &[&str]) {
        self.access.namespaces = Some(namespaces.iter().map(|n| (*n).to_owned()).collect());
    }

    /// The next `n` requests whose path contains `path` answer `code`
    /// (429 comes with `Retry-After: 1`).
    pub fn fail_matching(&mut self, path: &str, n: u32, code: u16) {
        self.access.failing.push((path.to_owned(), n, code));
    }

    /// The next `n` requests whose path contains `path` get no answer: the
    /// server closes the connection.
    pub fn drop_matching(&mut self, path: &str, n: u32) {
        self.access.dropping.push((path.to_owned(), n, ()));
    }

    /// The next `n` continue tokens presented are expired.
    pub fn expire_continue(&mut self, n: u32) {
        self.access.expire_continue = n;
    }

    /// Whether this request's connection is to be dropped (it is logged).
    pub fn take_drop(&mut self, method: &Method, path: &str, query: &str) -> bool {
        let hit = take(&mut self.access.dropping, path).is_some();
        if hit {
            self.log.push(super::Logged {
                method: method.to_string(),
                path: path.to_owned(),
                query: query.to_owned(),
            });
        }
        hit
    }

    /// An injected failure for this path, if one is due.
    pub fn aimed_failure(&mut self, path: &str) -> Option<(u16, Value)> {
        let code = take(&mut self.access.failing, path)?;
        let reason = match code {
            429 => "TooManyRequests",
            500 => "InternalError",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        Some(status(code, reason, &format!("injected failure ({code})")))
    }

    /// The real authorizer's 403 for a namespace-scoped user outside their
    /// namespaces. A namespace object counts as inside itself (a user
    /// bound in namespace `a` may get namespace `a`).
    pub fn outside_namespaces(
        &self,
        d: &ResDef,
        ns: Option<&str>,
        name: Option<&str>,
        method: &Method,
        q: &Query,
    ) -> Option<(u16, Value)> {
        let allowed = self.access.namespaces.as_ref()?;
        let verb = verb(method, name, q);
        let own_namespace = d.group.is_empty() && d.plural == "namespaces" && verb == "get";
        let inside = match (d.namespaced, ns, name) {
            (true, Some(n), _) => allowed.contains(n),
            (false, _, Some(n)) if own_namespace => allowed.contains(n),
            _ => false,
        };
        if inside {
            return None;
        }
        let scope = match (d.namespaced, ns, name) {
            (true, Some(n), _) => format!("in the namespace \"{n}\""),
            (false, _, Some(n)) if own_namespace => format!("in the namespace \"{n}\""),
            _ => "at the cluster scope".to_owned(),
        };
        let object = name.map(|n| format!(" \"{n}\"")).unwrap_or_default();
        Some(status(
            403,
            "Forbidden",
            &format!(
                "{plural}{object} is forbidden: User \"tester\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}",
                plural = d.plural,
                group = d.group
            ),
        ))
    }

    /// The offset a list continues at, or the real server's 410 for an
    /// expired token (older than the compaction, or expired on demand).
    pub fn continue_offset(&mut self, q: &Query) -> Result<usize, (u16, Value)> {
        let Some(token) = q.get("continue").filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        let (rv, offset) = token
            .split_once(':')
            .and_then(|(rv, off)| Some((rv.parse::<u64>().ok()?, off.parse::<usize>().ok()?)))
            .ok_or_else(|| status(400, "BadRequest", "continue key is not valid: malformed token"))?;
        let expired = if self.access.expire_continue > 0 {
            self.access.expire_continue -= 1;
            true
        } else {
            rv < self.compacted()
        };
        if expired {
            return Err(status(
                410,
                "Expired",
                "the provided continue parameter is too old to display a consistent list result; start a new list without it",
            ));
        }
        Ok(offset)
    }
}
