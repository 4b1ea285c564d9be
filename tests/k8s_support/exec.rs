//! Exec into a pod's container, as the API server and the kubelet answer
//! it: `GET /api/v1/namespaces/NS/pods/NAME/exec?command=..&command=..
//! &container=..&stdout=true&stderr=true` upgraded to a WebSocket (the
//! `v5.channel.k8s.io` or `v4.channel.k8s.io` subprotocol, as the client
//! offers), binary frames whose first byte is the channel (1 stdout, 2
//! stderr, 3 the status), then a close. Nothing is run: tests script the
//! results per pod, container and command prefix, and every exec is
//! recorded with what the VolumeBackups were when it started and ended.
//!
//! Refused as the real server refuses: 404 for an unknown pod; 400 without
//! a command, for a container the pod does not have (or none named when
//! it has several), for a pod without a node, not Running, or finished.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{decode, decode_path, json_response, lock, status, Body, Logged, State};

/// What a scripted command does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    /// How long it runs before answering.
    pub delay: Duration,
}

/// A scripted answer for the commands starting with `prefix` in a pod's
/// container ("" for any container).
#[derive(Debug, Clone)]
pub struct ExecScript {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub prefix: Vec<String>,
    pub result: ExecResult,
}

/// A VolumeBackup as an exec saw it: name, pod name, phase ("" unset).
pub type SeenVolume = (String, String, String);

/// One exec the server answered.
#[derive(Debug, Clone)]
pub struct ExecCall {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// The query as sent.
    pub query: String,
    pub protocol: String,
    pub started: Instant,
    pub ended: Option<Instant>,
    pub volumes_at_start: Vec<SeenVolume>,
    pub volumes_at_end: Vec<SeenVolume>,
}

/// The query's values of `key`, in order (a key may repeat).
fn values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| decode(k) == key)
        .map(|(_, v)| decode(v))
        .collect()
}

fn volumes(state: &State) -> Vec<SeenVolume> {
    state
        .objects
        .iter()
        .filter(|(k, _)| k.1 == "volumebackups")
        .map(|(k, v)| {
            (
                k.3.clone(),
                v.pointer("/spec/pod/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                v.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

/// `/api/v1/namespaces/NS/pods/NAME/exec`: the namespace and pod.
pub fn exec_target(path: &str) -> Option<(String, String)> {
    let decoded = decode_path(path);
    let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => Some(((*ns).to_owned(), (*name).to_owned())),
        _ => None,
    }
}

fn bad_request(message: &str) -> (u16, Value) {
    status(400, "BadRequest", message)
}

fn reply((code, v): (u16, Value)) -> Response<Body> {
    json_response(code, &v)
}

/// Checks an exec request against the pod; the container to run in.
fn check(state: &State, ns: &str, name: &str, query: &str) -> Result<String, (u16, Value)> {
    let key = ("".to_owned(), "pods".to_owned(), ns.to_owned(), name.to_owned());
    let Some(pod) = state.objects.get(&key) else {
        let (code, mut v) = status(404, "NotFound", &format!("pods \"{name}\" not found"));
        v["details"] = json!({"name": name, "kind": "pods"});
        return Err((code, v));
    };
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let container = match values(query, "container").first() {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => return Err(bad_request(&format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return Err(bad_request(&format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if values(query, "command").is_empty() {
        return Err(bad_request("you must specify at least 1 command"));
    }
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(bad_request(&format!("pod {name} does not have a host assigned")));
    }
    match pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
    {
        "Running" => Ok(container),
        phase @ ("Succeeded" | "Failed") => Err(bad_request(&format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        ))),
        _ => Err(bad_request(&format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))),
    }
}

/// The status frame's JSON for an exit code.
fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    }
}

fn frame(channel: u8, bytes: &[u8]) -> Message {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(channel);
    v.extend_from_slice(bytes);
    Message::binary(v)
}

/// Answers an exec request (the caller matched the path).
pub fn respond(state: Arc<Mutex<State>>, req: Request<Incoming>, ns: String, pod: String) -> Response<Body> {
    let query = req.uri().query().unwrap_or("").to_owned();
    let header = |name: hyper::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let upgrade = header(hyper::header::UPGRADE);
    let key = header(hyper::header::SEC_WEBSOCKET_KEY);
    let offered = header(hyper::header::SEC_WEBSOCKET_PROTOCOL);
    let (protocol, command, result, call_index) = {
        let mut s = lock(&state);
        s.log.push(Logged {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: query.clone(),
        });
        if req.method() != hyper::Method::GET {
            return reply(bad_request("exec over WebSocket is a GET"));
        }
        let container = match check(&s, &ns, &pod, &query) {
            Ok(c) => c,
            Err(refused) => return reply(refused),
        };
        if !upgrade.eq_ignore_ascii_case("websocket") || key.is_empty() {
            return reply(bad_request("Upgrade request required"));
        }
        let command = values(&query, "command");
        let result = s
            .exec_scripts
            .iter()
            .rev()
            .find(|sc| {
                sc.namespace == ns
                    && sc.pod == pod
                    && (sc.container.is_empty() || sc.container == container)
                    && command.starts_with(&sc.prefix)
            })
            .map(|sc| sc.result.clone())
            .unwrap_or_default();
        let protocol = if offered.split(',').any(|p| p.trim() == "v5.channel.k8s.io") {
            "v5.channel.k8s.io"
        } else if offered.split(',').any(|p| p.trim() == "v4.channel.k8s.io") {
            "v4.channel.k8s.io"
        } else {
            return reply(bad_request(
                "no supported subprotocol offered (v4.channel.k8s.io or v5.channel.k8s.io)",
            ));
        };
        let seen = volumes(&s);
        s.execs.push(ExecCall {
            namespace: ns.clone(),
            pod: pod.clone(),
            container: container.clone(),
            command: command.clone(),
            query: query.clone(),
            protocol: protocol.to_owned(),
            started: Instant::now(),
            ended: None,
            volumes_at_start: seen,
            volumes_at_end: Vec::new(),
        });
        let index = s.execs.len() - 1;
        (protocol, command, result, index)
    };
    let upgrading = hyper::upgrade::on(req);
    let state_for_task = state.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::time::sleep(result.delay).await;
        {
            let mut s = lock(&state_for_task);
            let seen = volumes(&s);
            if let Some(call) = s.execs.get_mut(call_index) {
                call.ended = Some(Instant::now());
                call.volumes_at_end = seen;
            }
        }
        if !result.stdout.is_empty() {
            let _ = ws.send(frame(1, result.stdout.as_bytes())).await;
        }
        if !result.stderr.is_empty() {
            let _ = ws.send(frame(2, result.stderr.as_bytes())).await;
        }
        let status = exit_status(&command, result.exit_code).to_string();
        let _ = ws.send(frame(3, status.as_bytes())).await;
        let _ = ws.close(None).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
        .header(hyper::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(Full::new(Bytes::new()).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}
