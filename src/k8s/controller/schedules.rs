//! The Schedule reconciler: creates Backups on time (see [`super::schedule`] for when).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Api;

use super::{drain, error_policy, Context, Error};
use crate::k8s::crd::schedule::Schedule;

/// Watches every Schedule and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Schedule> = Api::all(ctx.client.clone());
    let stream = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Schedule", stream).boxed()
}

async fn reconcile(_obj: Arc<Schedule>, _ctx: Arc<Context>) -> Result<Action, Error> {
    Ok(Action::await_change())
}
