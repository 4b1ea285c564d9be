//! The BackupRepository reconciler (see the module documentation of
//! `controller`): it opens the repository with the password of its Secret
//! (creating it when `initialize: IfMissing` and there is none), reports
//! `Ready` or `NotReady` with one line naming what is wrong, and when Ready
//! syncs the backups recorded in the repository ([`super::sync`]). It runs
//! at start and every sync period; what a user must fix goes into the
//! status, so one broken repository never stops the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use kube::runtime::controller::{self, Action};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::oneshot;

use super::access::repository_access;
use super::sync::{self, Memory};
use super::{drain, error_policy, log, metrics, Context, Error};
use crate::k8s::crd::repository::{BackupRepository, Initialize, RepositoryPhase};
use crate::k8s::jobs::{self, RepositoryAccess};
use crate::k8s::K8sError;
use crate::repo::{InitOptions, RepoError, Repository};
use crate::storage::open::{open, OpenOptions};

/// How many repositories are opened at once (each open derives a key with
/// Argon2id, which takes memory).
const CONCURRENCY: u16 = 3;

/// Watches every BackupRepository and reconciles it until shutdown.
pub fn run(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let api: Api<BackupRepository> = Api::all(ctx.client.clone());
    let state = Arc::new(State::default());
    let stream = super::slim_controller(api, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .shutdown_on_signal()
        .run(move |obj, ctx| reconcile(obj, ctx, state.clone()), error_policy, ctx);
    drain("BackupRepository", stream).boxed()
}

/// What the reconciler remembers of each BackupRepository (by uid).
#[derive(Default)]
struct State {
    repos: Mutex<HashMap<String, Remembered>>,
}

#[derive(Default)]
struct Remembered {
    /// When the repository was last looked at, and the generation then.
    checked: Option<(Instant, Option<i64>)>,
    /// The phase and message last reported (for events on changes only).
    reported: Option<(RepositoryPhase, String)>,
    memory: Memory,
}

impl State {
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Remembered) -> T) -> T {
        let mut repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        f(repos.entry(uid.to_owned()).or_default())
    }
}

/// What opening the repository gave.
enum Outcome {
    Ready { message: String, created: bool },
    NotReady(String),
}

async fn reconcile(obj: Arc<BackupRepository>, ctx: Arc<Context>, state: Arc<State>) -> Result<Action, Error> {
    let result = check_and_sync(&obj, &ctx, &state).await;
    if result.is_err() {
        // A failure is retried by the error policy, not held back a period.
        state.with(&obj.uid().unwrap_or_default(), |r| r.checked = None);
    }
    result
}

async fn check_and_sync(obj: &Arc<BackupRepository>, ctx: &Arc<Context>, state: &State) -> Result<Action, Error> {
    let period = ctx.settings.sync_period;
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = obj.uid().unwrap_or_default();
    // Writing the status triggers a reconciliation of its own: the
    // repository is looked at once per period unless its spec changed.
    let generation = obj.metadata.generation;
    let wait = state.with(&uid, |r| match r.checked {
        Some((at, g)) if g == generation => period.checked_sub(at.elapsed()),
        _ => None,
    });
    if let Some(wait) = wait.filter(|w| *w > Duration::from_millis(100)) {
        return Ok(Action::requeue(wait));
    }
    state.with(&uid, |r| r.checked = Some((Instant::now(), generation)));

    let access = match repository_access(ctx, obj).await {
        Ok(access) => access,
        // The API server failed us: try again soon, the status stands.
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            report(ctx, obj, state, Outcome::NotReady(e.to_string())).await?;
            return Ok(Action::requeue(period));
        }
    };
    let secret = format!(
        "Secret {}/{}, key {}",
        obj.namespace().unwrap_or_default(),
        obj.spec.password_secret_ref.name,
        obj.spec.password_secret_ref.key
    );
    let initialize = obj.spec.initialize;
    let known = state.with(&uid, |r| r.memory.known());

    // One blocking job holds the repository through the sync: it lists
    // and reads the snapshots, waits while the Backups are listed here,
    // then lists the snapshots again.
    let (first_tx, first_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let job = jobs::run(move || {
        let (repo, created) = open_or_init(&access, initialize)?;
        let (opened, scan) = sync::scan(repo, &known)?;
        let location = opened.repository().storage().location();
        let id = opened.repository().config().id.short();
        if first_tx.send((scan, location, id, created)).is_err() || go_rx.blocking_recv().is_err() {
            return Ok(None);
        }
        Ok(Some(sync::list_ids(opened.repository())?))
    });
    tokio::pin!(job);
    let first = tokio::select! {
        first = first_rx => first.ok(),
        done = &mut job => {
            let outcome = match done {
                Err(e) => not_ready(&e, initialize, &secret),
                Ok(_) => Outcome::NotReady("the repository work stopped early".into()),
            };
            report(ctx, obj, state, outcome).await?;
            return Ok(Action::requeue(period));
        }
    };
    let Some((scan, location, id, created)) = first else {
        // The job stopped before it listed anything: its error says why.
        let outcome = match job.await {
            Err(e) => not_ready(&e, initialize, &secret),
            Ok(_) => Outcome::NotReady("the repository work stopped early".into()),
        };
        report(ctx, obj, state, outcome).await?;
        return Ok(Action::requeue(period));
    };
    report(
        ctx,
        obj,
        state,
        Outcome::Ready {
            message: format!("repository {id} at {location}"),
            created,
        },
    )
    .await?;
    let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    for warning in &scan.warnings {
        log::warn(&format!("BackupRepository {name}: {warning}"));
        ctx.event(obj.as_ref(), true, "BrokenRecord", warning.clone()).await;
    }
    state.with(&uid, |r| r.memory.absorb(&scan));

    let existing = sync::existing(ctx, &obj.namespace().unwrap_or_default()).await?;
    // Dropping go_tx on an error above ends the job without the second list.
    let _ = go_tx.send(());
    let second = match job.await {
        Ok(Some(ids)) => ids,
        Ok(None) => return Ok(Action::requeue(period)),
        Err(e) => {
            log::warn(&format!("BackupRepository {name}: listing snapshots: {e}"));
            return Ok(Action::requeue(period));
        }
    };
    let candidates = state.with(&uid, |r| r.memory.candidates(&scan.listed, &second));
    sync::create_missing(ctx, obj, &candidates, &existing).await?;
    Ok(Action::requeue(period))
}

/// Opens the repository; when there is none and `initialize` allows it,
/// creates one (default options) with the password. Says whether it did.
fn open_or_init(access: &RepositoryAccess, initialize: Initialize) -> Result<(Repository, bool), K8sError> {
    match access.open() {
        Err(K8sError::Repo(RepoError::NotARepository { .. })) if initialize == Initialize::IfMissing => {}
        other => return other.map(|repo| (repo, false)),
    }
    // No cache while creating: a cache directory is named by the config.
    let options = OpenOptions {
        cache: None,
        ..access.options.clone()
    };
    let storage = open(&access.location, &options)?;
    match Repository::init(storage, access.password.as_bytes(), InitOptions::default()) {
        Ok(repo) => Ok((repo, true)),
        // Created meanwhile by someone else.
        Err(RepoError::AlreadyExists { .. }) => access.open().map(|repo| (repo, false)),
        Err(e) => Err(e.into()),
    }
}

/// The NotReady line of a failure to open the repository.
fn not_ready(e: &K8sError, initialize: Initialize, secret: &str) -> Outcome {
    Outcome::NotReady(match e {
        K8sError::Repo(RepoError::WrongPassword { .. }) => format!("{e}; the password is that of {secret}"),
        K8sError::Repo(RepoError::NotARepository { .. }) if initialize == Initialize::Never => {
            format!("{e}; initialize is Never, so it is not created")
        }
        e => e.to_string(),
    })
}

/// Writes the phase and message when they changed, records an event when
/// the phase (or the reason for NotReady) changed, and sets the gauge.
async fn report(ctx: &Context, obj: &BackupRepository, state: &State, outcome: Outcome) -> Result<(), Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let (phase, message, created) = match outcome {
        Outcome::Ready { message, created } => (RepositoryPhase::Ready, message, created),
        Outcome::NotReady(message) => (RepositoryPhase::NotReady, message, false),
    };
    // Messages are one line whatever a store or a server answered.
    let message = message.replace(['\n', '\r'], " ");
    let ready = phase == RepositoryPhase::Ready;
    ctx.metrics().set(
        metrics::names::REPOSITORY_READY,
        &[("namespace", &namespace), ("name", &name)],
        if ready { 1.0 } else { 0.0 },
    );
    if created {
        log::info(&format!("BackupRepository {namespace}/{name}: created the repository"));
        ctx.event(obj, false, "Initialized", message.clone()).await;
    }
    let status = obj.status.as_ref();
    let stored = (status.and_then(|s| s.phase), status.and_then(|s| s.message.clone()));
    if stored != (Some(phase), Some(message.clone())) {
        let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &namespace);
        super::status::patch_status(&api, &name, json!({"phase": phase, "message": message})).await?;
    }
    let uid = obj.uid().unwrap_or_default();
    let before = state.with(&uid, |r| {
        let before = r.reported.clone().or_else(|| stored.0.zip(stored.1.clone()));
        r.reported = Some((phase, message.clone()));
        before
    });
    let changed = match &before {
        None => true,
        Some((p, m)) => *p != phase || (!ready && *m != message),
    };
    if changed {
        if ready {
            log::info(&format!("BackupRepository {namespace}/{name}: Ready ({message})"));
            ctx.event(obj, false, "Ready", message).await;
        } else {
            log::warn(&format!("BackupRepository {namespace}/{name}: NotReady: {message}"));
            ctx.event(obj, true, "NotReady", message).await;
        }
    }
    Ok(())
}
