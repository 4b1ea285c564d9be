//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`,
//! `DELETED`, `BOOKMARK`, `ERROR`) over a chunked 200 response, as the API
//! server's watch cache sends them. A resourceVersion older than the
//! compaction point gets one ERROR event carrying a 410 Status (`Expired`),
//! as the real server sends it, and the stream ends. An object leaving a
//! watch's selection is reported DELETED, one entering it ADDED. Streams end
//! after `timeoutSeconds`, on compaction and when the server stops.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::fields::FieldSelector;
use super::routes::selected;
use super::{api_version, lock, Body, ResDef, State};

/// A watch as the route accepted it; its first events were taken under the
/// same lock as the check of its resourceVersion.
pub struct WatchRequest {
    pub def: ResDef,
    pub namespace: Option<String>,
    pub labels: Option<cairn::k8s::manifests::filter::Selector>,
    pub fields: FieldSelector,
    /// Objects sent as ADDED first (no resourceVersion, "0", or a streaming
    /// list).
    pub initial: Vec<Value>,
    /// Whether the first events end with a bookmark annotated
    /// `k8s.io/initial-events-end` (`sendInitialEvents=true`).
    pub initial_events_end: bool,
    /// Changes after this resourceVersion are sent.
    pub from: u64,
    /// The Status of a 410, when `from` is compacted away.
    pub gone: Option<Value>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub epoch: u64,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(d: &ResDef, rv: u64, end_of_initial: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if end_of_initial {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": d.kind, "apiVersion": api_version(&d.group, &d.version), "metadata": meta})
}

/// Starts the stream of a watch.
pub fn respond(state: Arc<Mutex<State>>, w: WatchRequest) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(run(state, w, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| Response::new(http_body_util::Full::new(Bytes::new()).boxed_unsync()))
}

/// The type of event a change is for this watch, if any.
fn event_for(w: &WatchRequest, c: &super::Change) -> Option<&'static str> {
    let (g, p, n, _) = &c.key;
    if *g != w.def.group || *p != w.def.plural || w.namespace.as_ref().is_some_and(|ns| ns != n) {
        return None;
    }
    let now = selected(&c.object, w.labels.as_ref(), &w.fields);
    match c.kind {
        "MODIFIED" => {
            let before = c
                .previous
                .as_ref()
                .is_some_and(|o| selected(o, w.labels.as_ref(), &w.fields));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
        kind => now.then_some(kind),
    }
}

async fn run(state: Arc<Mutex<State>>, w: WatchRequest, tx: tokio::sync::mpsc::Sender<Bytes>) {
    if let Some(status) = &w.gone {
        let _ = tx.send(line("ERROR", status)).await;
        return;
    }
    for obj in &w.initial {
        if tx.send(line("ADDED", obj)).await.is_err() {
            return;
        }
    }
    if w.initial_events_end
        && tx
            .send(line("BOOKMARK", &bookmark(&w.def, w.from, true)))
            .await
            .is_err()
    {
        return;
    }
    let mut changed = lock(&state).subscribe();
    let deadline = w.timeout.map(|t| Instant::now() + t);
    let mut last = w.from;
    loop {
        let (lines, epoch, interval) = {
            let s = lock(&state);
            // Changes are in resourceVersion order: skip to the new ones.
            let first = s.changes.partition_point(|c| c.rv <= last);
            let lines: Vec<Bytes> = s.changes[first..]
                .iter()
                .filter_map(|c| event_for(&w, c).map(|kind| line(kind, &c.object)))
                .collect();
            last = last.max(s.resource_version());
            (lines, s.watch_epoch(), s.bookmark_interval)
        };
        if epoch != w.epoch {
            return;
        }
        for l in lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let tick = tokio::time::sleep(interval);
        let end = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() {
                    return;
                }
            }
            _ = end => return,
            _ = tick, if w.bookmarks => {
                if tx.send(line("BOOKMARK", &bookmark(&w.def, last, false))).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}
