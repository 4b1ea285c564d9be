//! `cairn k8s controller`: the reconcilers of cairn's custom resources, in
//! one process (one replica; a Deployment with strategy Recreate).
//!
//! How each kind is reconciled (every step is idempotent, so the process
//! can be killed anywhere and resumes from what the API server and the
//! repository hold):
//!
//! - **BackupRepository**: reads the password and credentials Secrets,
//!   opens the repository (initializing it when `initialize: IfMissing`),
//!   reports `Ready` or `NotReady` with the reason, and every sync period
//!   creates a Backup object for each backup recorded in the repository
//!   that has none, so a new cluster sees an old one's backups. On the
//!   maintenance schedules it starts Jobs running `cairn prune` and
//!   `cairn check --read-data-subset`, records their results, and keeps the
//!   last `keepJobs` of them.
//! - **Backup**: writes `InProgress` first; then adopts the manifest
//!   snapshot tagged with its uid if a killed run left one (forgetting any
//!   extra), or runs the manifest backup; finishes the status; carries a
//!   finalizer so that deleting it, or its expiry, forgets its snapshots
//!   before the object goes.
//! - **Restore**: restores the manifests of its Backup's snapshot and
//!   reports the counts per object.
//! - **Schedule**: creates Backups on its cron ([`schedule`]), one at a time.
//!
//! Repository work blocks and owns a runtime of its own, so it runs on
//! tokio's blocking pool, never inside a reconciler's future.

pub mod http;
pub mod metrics;
pub mod schedule;
