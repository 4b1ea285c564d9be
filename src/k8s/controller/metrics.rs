//! The controller's metrics in the Prometheus text format (version 0.0.4):
//! counters and gauges with labels, kept in memory and rendered on each
//! scrape of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A metric family: its help text, its type, and one value per label set.
#[derive(Debug, Default)]
struct Family {
    help: &'static str,
    kind: &'static str,
    values: BTreeMap<Vec<(&'static str, String)>, f64>,
}

/// Every metric the controller exports.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// Names and help texts of the metrics, so that each is declared once.
pub mod names {
    pub const BACKUPS: (&str, &str) = ("cairn_backups_total", "Backups that reached a final phase, by phase.");
    pub const RESTORES: (&str, &str) = ("cairn_restores_total", "Restores that reached a final phase, by phase.");
    pub const BACKUP_SECONDS: (&str, &str) = (
        "cairn_backup_duration_seconds_sum",
        "Total seconds of finished Backups, by phase.",
    );
    pub const BACKUP_BYTES: (&str, &str) = ("cairn_backup_bytes_added_total", "Bytes Backups added to repositories.");
    pub const LAST_SUCCESS: (&str, &str) = (
        "cairn_schedule_last_success_timestamp_seconds",
        "When the last Backup of a Schedule completed, in seconds since 1970.",
    );
    pub const MAINTENANCE: (&str, &str) = (
        "cairn_maintenance_jobs_total",
        "Maintenance Jobs that finished, by repository, kind (prune, check) and result.",
    );
    pub const RECONCILE_ERRORS: (&str, &str) = (
        "cairn_reconcile_errors_total",
        "Reconciliations that failed, by kind and error.",
    );
    pub const REPOSITORY_READY: (&str, &str) = (
        "cairn_repository_ready",
        "1 when a BackupRepository is Ready, 0 when not.",
    );
}

type Name = (&'static str, &'static str);

impl Metrics {
    fn update(&self, name: Name, kind: &'static str, labels: &[(&'static str, &str)], f: impl FnOnce(&mut f64)) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name.0).or_insert_with(|| Family {
            help: name.1,
            kind,
            values: BTreeMap::new(),
        });
        let key = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        f(family.values.entry(key).or_insert(0.0));
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: Name, labels: &[(&'static str, &str)], by: f64) {
        self.update(name, "counter", labels, |v| *v += by);
    }

    /// Sets a gauge.
    pub fn set(&self, name: Name, labels: &[(&'static str, &str)], to: f64) {
        self.update(name, "gauge", labels, |v| *v = to);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, value) in &family.values {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

/// A label value as the text format quotes it.
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_escaped_labels() {
        let m = Metrics::default();
        m.add(names::BACKUPS, &[("phase", "Completed")], 1.0);
        m.add(names::BACKUPS, &[("phase", "Completed")], 1.0);
        m.add(names::BACKUPS, &[("phase", "Failed")], 1.0);
        m.set(names::REPOSITORY_READY, &[("repository", "ns/a\"b\\c\nd")], 1.0);
        let text = m.render();
        assert!(text.contains("# TYPE cairn_backups_total counter\n"), "{text}");
        assert!(text.contains("cairn_backups_total{phase=\"Completed\"} 2\n"), "{text}");
        assert!(text.contains("cairn_backups_total{phase=\"Failed\"} 1\n"), "{text}");
        assert!(
            text.contains("cairn_repository_ready{repository=\"ns/a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE cairn_repository_ready gauge\n"), "{text}");
    }
}
