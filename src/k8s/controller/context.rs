//! What every reconciler shares: the client, the controller's settings,
//! metrics and health, and the event recorder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::http::Health;
use super::metrics::Metrics;
use crate::k8s::client::ClusterAccess;

/// The settings of one controller process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the controller reached the cluster; manifest backups and restores
    /// connect the same way.
    pub access: ClusterAccess,
    /// The controller's own namespace: maintenance Jobs run here.
    pub namespace: String,
    /// The cluster's name: the host of every snapshot this controller writes.
    pub cluster_name: String,
    /// How often each BackupRepository is synced with its repository.
    pub sync_period: Duration,
    /// The image of maintenance Jobs (the controller's own).
    pub image: String,
    /// Where object store repositories' index files are cached (none: no cache).
    pub cache_dir: Option<PathBuf>,
    /// The nodes' directory of hostPath PVs the agents read
    /// (`--host-path-root`): claims on hostPath PVs below it are backed
    /// up, others skipped with the reason.
    pub host_path_root: Option<String>,
}

/// Shared by the reconcilers of one controller process.
pub struct Context {
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
    pub settings: Settings,
    pub health: Arc<Health>,
    recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, server: String, settings: Settings, health: Arc<Health>) -> Self {
        let reporter = Reporter {
            controller: "cairn-controller".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            server,
            settings,
            health,
            recorder,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.health.metrics
    }

    /// Records an event on `obj` (`reason` in PascalCase, `note` one line).
    /// An event that cannot be written is logged, never an error: events
    /// are for people, the status is the record.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        let reference: ObjectReference = obj.object_ref(&());
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note.into()),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            super::log::warn(&format!(
                "event {reason} on {}/{}: {e}",
                reference.namespace.unwrap_or_default(),
                reference.name.unwrap_or_default()
            ));
        }
    }
}
