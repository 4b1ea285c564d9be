//! Namespaces being deleted. A namespace that is terminating takes every
//! object created in it with it, and the API server refuses new ones (403),
//! so a restore into it waits for it to go, then creates it again.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject};

/// The default of `--namespace-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How often a terminating namespace is looked at.
const POLL: Duration = Duration::from_millis(250);

/// Whether a namespace is being deleted.
pub fn terminating(ns: &DynamicObject) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.data.pointer("/status/phase").and_then(serde_json::Value::as_str) == Some("Terminating")
}

/// The reason every object of a namespace that did not go fails with.
pub fn never_went(ns: &str, timeout: Duration) -> String {
    format!(
        "namespace {ns} is being deleted and was still there after {}",
        short(timeout)
    )
}

/// A duration as `--namespace-timeout` takes it: `10m`, `90s`, `1h`.
fn short(d: Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    match secs {
        _ if millis != 0 || secs == 0 => format!("{}ms", d.as_millis()),
        _ if secs % 3600 == 0 => format!("{}h", secs / 3600),
        _ if secs % 60 == 0 => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// Waits until the namespace `name` (a path segment) is gone or no longer
/// terminating; false when it is still terminating after `timeout`.
pub async fn wait_gone(api: &Api<DynamicObject>, name: &str, timeout: Duration) -> Result<bool, kube::Error> {
    let deadline = Instant::now() + timeout;
    loop {
        match api.get_opt(name).await? {
            None => return Ok(true),
            Some(ns) if !terminating(&ns) => return Ok(true),
            Some(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_namespace_and_the_wait() {
        let why = never_went("shop", Duration::from_secs(600));
        assert!(why.contains("namespace shop") && why.contains("10m"), "{why}");
        assert_eq!(short(Duration::from_secs(90)), "90s");
        assert_eq!(short(Duration::from_secs(7200)), "2h");
        assert_eq!(short(Duration::from_millis(1500)), "1500ms");
    }
}
