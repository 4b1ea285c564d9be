//! The maintenance Jobs themselves, pure: their names, labels and spec
//! from a BackupRepository, and how a finished one ended.
//!
//! A Job runs the controller's own image with `-r <url>`, `-o k=v` for each
//! option, and `prune` or `check [--read-data-subset S]`. The password
//! reaches it only as `CAIRN_PASSWORD` from a `secretKeyRef` (never a
//! literal in the Job), the credentials Secret as `envFrom`. Names are
//! `<repository>-<kind>-<YYYYMMDDhhmmss>` of the run time in UTC, so that
//! a run has exactly one Job, also across restarts of the controller.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};

use crate::k8s::crd::repository::{BackupRepository, JobResult, Maintenance};

/// Label of maintenance Jobs: the BackupRepository they maintain.
pub const LABEL_REPOSITORY: &str = "backup.cairn.io/repository";
/// Label of maintenance Jobs: `prune` or `check`.
pub const LABEL_MAINTENANCE: &str = "backup.cairn.io/maintenance";
/// Annotation of maintenance Jobs: the cron time of their run (RFC 3339).
pub const ANNOTATION_RUN_TIME: &str = "backup.cairn.io/run-time";
/// How long a maintenance Job may run before Kubernetes stops it (12 hours).
pub const ACTIVE_DEADLINE_SECONDS: i64 = 12 * 3600;
/// The longest Job name whose pods still get a `job-name` label.
const MAX_JOB_NAME: usize = 63;
/// Where the Job's container may write temporary files (an emptyDir).
const TMP_DIR: &str = "/tmp";

/// What a maintenance Job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cairn prune` on `maintenance.schedule`.
    Prune,
    /// `cairn check` on `maintenance.checkSchedule`.
    Check,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Prune, Kind::Check];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prune => "prune",
            Self::Check => "check",
        }
    }

    /// The status field its results go to.
    pub fn status_field(self) -> &'static str {
        match self {
            Self::Prune => "lastMaintenance",
            Self::Check => "lastCheck",
        }
    }

    /// The spec field holding its cron, for messages.
    pub fn schedule_field(self) -> &'static str {
        match self {
            Self::Prune => "maintenance.schedule",
            Self::Check => "maintenance.checkSchedule",
        }
    }

    /// Its cron, when the repository asks for it.
    pub fn schedule(self, m: &Maintenance) -> Option<&str> {
        match self {
            Self::Prune => m.schedule.as_deref(),
            Self::Check => m.check_schedule.as_deref(),
        }
        .filter(|s| !s.trim().is_empty())
    }

    /// The words after the global options.
    fn command(self, m: &Maintenance) -> Vec<String> {
        match self {
            Self::Prune => vec!["prune".into()],
            Self::Check => {
                let mut words = vec!["check".to_owned()];
                if let Some(subset) = m.read_data_subset.as_deref().filter(|s| !s.is_empty()) {
                    words.extend(["--read-data-subset".to_owned(), subset.to_owned()]);
                }
                words
            }
        }
    }
}

/// A short hash of a name, for names cut to fit.
fn short_hash(name: &str) -> String {
    blake3::hash(name.as_bytes()).to_hex()[..8].to_owned()
}

/// `name` cut to at most `max` characters: itself when it fits, else a
/// prefix and a hash of the whole (so two long names stay apart).
fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let mut cut = max - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = name[..cut].trim_end_matches(['-', '.']);
    format!("{prefix}-{}", short_hash(name))
}

/// The `backup.cairn.io/repository` label of a repository's Jobs (label
/// values hold at most 63 characters).
pub fn repository_label(repository: &str) -> String {
    fit(repository, 63)
}

/// The name of the Job of `kind` for the run at `at`:
/// `<repository>-<kind>-<YYYYMMDDhhmmss>`, at most 63 characters.
pub fn job_name(repository: &str, kind: Kind, at: Timestamp) -> String {
    let suffix = format!("-{}-{}", kind.as_str(), at.strftime("%Y%m%d%H%M%S"));
    format!("{}{suffix}", fit(repository, MAX_JOB_NAME - suffix.len()))
}

/// The Job of `kind` for `repo`'s run at `at`, in `namespace`, running
/// `image`.
pub fn job(repo: &BackupRepository, kind: Kind, at: Timestamp, namespace: &str, image: &str) -> Result<Job, String> {
    let repo_name = repo.name_any();
    let maintenance = repo.spec.maintenance.clone().unwrap_or_default();
    let mut args = vec!["-r".to_owned(), repo.spec.url.clone(), "--no-cache".to_owned()];
    for (k, v) in &repo.spec.options {
        args.extend(["-o".to_owned(), format!("{k}={v}")]);
    }
    args.extend(kind.command(&maintenance));
    let password = &repo.spec.password_secret_ref;
    let mut container = json!({
        "name": "cairn",
        "image": image,
        "args": args,
        "env": [
            {"name": "CAIRN_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": password.name, "key": password.key}}},
            {"name": "TMPDIR", "value": TMP_DIR},
        ],
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
    });
    if let Some(creds) = &repo.spec.credentials_secret_ref {
        container["envFrom"] = json!([{"secretRef": {"name": creds.name}}]);
    }
    if let Some(resources) = &maintenance.resources {
        container["resources"] = serde_json::to_value(resources).map_err(|e| e.to_string())?;
    }
    let labels = json!({
        "app.kubernetes.io/name": "cairn",
        "app.kubernetes.io/part-of": "cairn",
        "app.kubernetes.io/managed-by": "cairn",
        "app.kubernetes.io/component": "maintenance",
        LABEL_REPOSITORY: repository_label(&repo_name),
        LABEL_MAINTENANCE: kind.as_str(),
    });
    let owner = repo
        .controller_owner_ref(&())
        .map(|r| serde_json::to_value(vec![r]))
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(Value::Null);
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(&repo_name, kind, at),
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_RUN_TIME: at.to_string()},
            "ownerReferences": owner,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                        "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                }
            }
        }
    });
    serde_json::from_value(job).map_err(|e| format!("building Job: {e}"))
}

/// The run time of a maintenance Job: its annotation, else its creation.
pub fn run_time(job: &Job) -> Option<Timestamp> {
    job.annotations()
        .get(ANNOTATION_RUN_TIME)
        .and_then(|t| t.parse().ok())
        .or_else(|| job.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How a finished Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: JobResult,
    /// When it finished.
    pub time: Option<Timestamp>,
    /// The message of its final condition.
    pub message: Option<String>,
}

/// How `job` ended, or `None` while it runs.
pub fn outcome(job: &Job) -> Option<Outcome> {
    let status = job.status.as_ref()?;
    let condition = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))?;
    let result = if condition.type_ == "Complete" {
        JobResult::Succeeded
    } else {
        JobResult::Failed
    };
    let time = match result {
        JobResult::Succeeded => status.completion_time.as_ref().map(|t| t.0),
        JobResult::Failed => None,
    }
    .or_else(|| condition.last_transition_time.as_ref().map(|t| t.0));
    Some(Outcome {
        result,
        time,
        message: condition.message.clone().filter(|m| !m.is_empty()),
    })
}

/// Which of the finished Jobs (name, run time) to delete so that the
/// newest `keep` remain.
pub fn to_delete(mut finished: Vec<(String, Option<Timestamp>)>, keep: u32) -> Vec<String> {
    finished.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    finished.into_iter().skip(keep as usize).map(|(name, _)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn repo(spec: Value) -> BackupRepository {
        let mut full = json!({"url": "s3://bucket/cairn", "passwordSecretRef": {"name": "pw", "key": "password"}});
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        let mut r = BackupRepository::new("main", serde_json::from_value(full).unwrap());
        r.metadata.namespace = Some("cairn-system".into());
        r.metadata.uid = Some("u-1".into());
        r
    }

    #[test]
    fn names_fit_in_63_characters_and_stay_apart() {
        let at = ts("2026-12-06T03:00:00Z");
        assert_eq!(job_name("main", Kind::Prune, at), "main-prune-20261206030000");
        assert_eq!(job_name("main", Kind::Check, at), "main-check-20261206030000");
        let long_a = format!("{}a", "r".repeat(80));
        let long_b = format!("{}b", "r".repeat(80));
        let (a, b) = (job_name(&long_a, Kind::Prune, at), job_name(&long_b, Kind::Prune, at));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with("-prune-20261206030000"), "{a}");
        let fits = "x".repeat(42);
        assert_eq!(job_name(&fits, Kind::Prune, at).len(), 63);
        assert_eq!(repository_label("main"), "main");
        assert!(repository_label(&long_a).len() <= 63);
    }

    #[test]
    fn the_password_comes_from_its_secret_reference_only() {
        let r = repo(json!({
            "credentialsSecretRef": {"name": "s3-creds"},
            "options": {"s3.endpoint": "http://minio:9000", "s3.region": "eu"},
            "maintenance": {"schedule": "@daily", "checkSchedule": "@weekly", "readDataSubset": "10%",
                            "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": 1073741824}}},
        }));
        let j = job(&r, Kind::Prune, ts("2026-12-06T03:00:00Z"), "cairn-system", "img:1").unwrap();
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["metadata"]["name"], "main-prune-20261206030000");
        assert_eq!(v["metadata"]["namespace"], "cairn-system");
        assert_eq!(v["metadata"]["labels"][LABEL_REPOSITORY], "main");
        assert_eq!(v["metadata"]["labels"][LABEL_MAINTENANCE], "prune");
        assert_eq!(
            v["metadata"]["annotations"][ANNOTATION_RUN_TIME],
            "2026-12-06T03:00:00Z"
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "BackupRepository");
        assert_eq!(v["spec"]["backoffLimit"], 0);
        assert_eq!(v["spec"]["activeDeadlineSeconds"], ACTIVE_DEADLINE_SECONDS);
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "img:1");
        assert_eq!(
            c["args"],
            json!([
                "-r",
                "s3://bucket/cairn",
                "--no-cache",
                "-o",
                "s3.endpoint=http://minio:9000",
                "-o",
                "s3.region=eu",
                "prune"
            ])
        );
        assert_eq!(
            c["env"][0],
            json!({"name": "CAIRN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}})
        );
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "s3-creds"}}]));
        assert_eq!(c["resources"]["limits"]["memory"], "1073741824");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        let check = job(&r, Kind::Check, ts("2026-12-06T03:00:00Z"), "cairn-system", "img:1").unwrap();
        let args = serde_json::to_value(&check).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        assert_eq!(
            args.as_array().unwrap()[7..],
            [json!("check"), json!("--read-data-subset"), json!("10%")]
        );
        // Without a subset: a plain check.
        let plain = repo(json!({"maintenance": {"checkSchedule": "@weekly"}}));
        let check = job(&plain, Kind::Check, ts("2026-12-06T03:00:00Z"), "ns", "img").unwrap();
        let args = serde_json::to_value(&check).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"].clone();
        assert_eq!(args, json!(["-r", "s3://bucket/cairn", "--no-cache", "check"]));
    }

    #[test]
    fn outcomes_from_the_final_condition() {
        let finished = |kind: &str| -> Job {
            serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {
                "completionTime": "2026-12-06T03:05:00Z",
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": kind, "status": "True", "message": "why", "lastTransitionTime": "2026-12-06T03:04:00Z"}]}}))
            .unwrap()
        };
        let ok = outcome(&finished("Complete")).unwrap();
        assert_eq!(ok.result, JobResult::Succeeded);
        assert_eq!(ok.time, Some(ts("2026-12-06T03:05:00Z")));
        let failed = outcome(&finished("Failed")).unwrap();
        assert_eq!(failed.result, JobResult::Failed);
        assert_eq!(failed.time, Some(ts("2026-12-06T03:04:00Z")));
        assert_eq!(failed.message.as_deref(), Some("why"));
        let running: Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {"active": 1}})).unwrap();
        assert_eq!(outcome(&running), None);
    }

    #[test]
    fn the_newest_finished_jobs_are_kept() {
        let jobs = vec![
            ("a".to_owned(), Some(ts("2026-12-01T00:00:00Z"))),
            ("c".to_owned(), Some(ts("2026-12-03T00:00:00Z"))),
            ("b".to_owned(), Some(ts("2026-12-02T00:00:00Z"))),
        ];
        assert_eq!(to_delete(jobs.clone(), 1), vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(to_delete(jobs.clone(), 3), Vec::<String>::new());
        assert_eq!(to_delete(jobs, 0).len(), 3);
    }
}
