//! What a restore reports: each object's outcome, and counts per resource.

use std::collections::BTreeMap;

use serde::Serialize;

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    /// Merged into the object the cluster made (a ServiceAccount): what
    /// was added.
    Merged(String),
    Skipped(String),
    Failed(String),
    /// Dry run: would be created.
    WouldCreate,
    /// Dry run: exists and would be updated.
    WouldUpdate,
    /// Dry run: exists and would be merged into.
    WouldMerge,
}

/// One object's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    /// `deployments.apps`
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Counts for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub merged: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// The result of a restore, in the order the objects were handled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub results: Vec<ObjectResult>,
    /// Problems that concern no single object (a definition that never
    /// became established, an API group that could not be discovered).
    pub warnings: Vec<String>,
}

impl Report {
    /// Counts per resource (dry-run outcomes count as what they would be).
    pub fn counts(&self) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for r in &self.results {
            let c = out.entry(r.resource.clone()).or_default();
            match r.outcome {
                Outcome::Created | Outcome::WouldCreate => c.created += 1,
                Outcome::Updated | Outcome::WouldUpdate => c.updated += 1,
                Outcome::Merged(_) | Outcome::WouldMerge => c.merged += 1,
                Outcome::Skipped(_) => c.skipped += 1,
                Outcome::Failed(_) => c.failed += 1,
            }
        }
        out
    }

    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count()
    }
}
