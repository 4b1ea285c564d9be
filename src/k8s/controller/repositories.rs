//! The BackupRepository reconciler (see the module documentation of `controller`).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Api;

use super::{drain, error_policy, Context, Error};
use crate::k8s::crd::repository::BackupRepository;

/// Watches every BackupRepository and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<BackupRepository> = Api::all(ctx.client.clone());
    let stream = Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx);
    drain("BackupRepository", stream).boxed()
}

async fn reconcile(_obj: Arc<BackupRepository>, _ctx: Arc<Context>) -> Result<Action, Error> {
    Ok(Action::await_change())
}
