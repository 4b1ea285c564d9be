//! One resource list read page by page. A continue token the API server no
//! longer honours (`410 Gone`, reason `Expired`: etcd compacted past the
//! list's resourceVersion) starts the list again from the beginning; the
//! objects already handed out are not handed out again.
//!
//! Throttling and server errors are retried per request by the client's
//! retry layer ([`crate::k8s::retry`]), not here.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use kube::api::{Api, DynamicObject, ListParams};

use crate::k8s::client::status_code;

/// How often one list starts again after its continue token expired.
pub const RESTARTS: u32 = 3;

pub struct Pager {
    api: Api<DynamicObject>,
    params: ListParams,
    token: Option<String>,
    done: bool,
    /// Hashes of `namespace/name` of every object handed out: a 64-bit
    /// hash per object rather than its name keeps a list of 100,000
    /// objects to about two megabytes.
    seen: HashSet<u64>,
    /// Times the list started again.
    pub restarts: u32,
}

fn identity(o: &DynamicObject) -> u64 {
    let mut h = DefaultHasher::new();
    o.metadata.namespace.as_deref().unwrap_or("").hash(&mut h);
    o.metadata.name.as_deref().unwrap_or("").hash(&mut h);
    h.finish()
}

impl Pager {
    pub fn new(api: Api<DynamicObject>, params: ListParams) -> Self {
        Self {
            api,
            params,
            token: None,
            done: false,
            seen: HashSet::new(),
            restarts: 0,
        }
    }

    /// The next page's objects not handed out before, or None at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<DynamicObject>>, kube::Error> {
        loop {
            if self.done {
                return Ok(None);
            }
            let params = match &self.token {
                Some(token) => self.params.clone().continue_token(token),
                None => self.params.clone(),
            };
            match self.api.list(&params).await {
                Ok(page) => {
                    self.token = page.metadata.continue_.filter(|t| !t.is_empty());
                    self.done = self.token.is_none();
                    let seen = &mut self.seen;
                    return Ok(Some(
                        page.items.into_iter().filter(|o| seen.insert(identity(o))).collect(),
                    ));
                }
                Err(e) if status_code(&e) == Some(410) && self.token.is_some() && self.restarts < RESTARTS => {
                    self.restarts += 1;
                    self.token = None;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
