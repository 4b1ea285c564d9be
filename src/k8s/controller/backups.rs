//! The Backup reconciler (see the module documentation of `controller`).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Api;

use super::{drain, error_policy, Context, Error};
use crate::k8s::crd::backup::Backup;

/// Watches every Backup and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Backup> = Api::all(ctx.client.clone());
    let stream = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Backup", stream).boxed()
}

async fn reconcile(_obj: Arc<Backup>, _ctx: Arc<Context>) -> Result<Action, Error> {
    Ok(Action::await_change())
}
