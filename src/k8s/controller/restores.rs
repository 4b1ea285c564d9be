//! The Restore reconciler (see the module documentation of `controller`).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Api;

use super::{drain, error_policy, Context, Error};
use crate::k8s::crd::restore::Restore;

/// Watches every Restore and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<Restore> = Api::all(ctx.client.clone());
    let stream = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("Restore", stream).boxed()
}

async fn reconcile(_obj: Arc<Restore>, _ctx: Arc<Context>) -> Result<Action, Error> {
    Ok(Action::await_change())
}
