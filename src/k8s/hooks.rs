//! Running a command in a pod's container through the API server's exec
//! (a WebSocket upgrade of `GET .../pods/NAME/exec`): the command's words
//! are sent as given (no shell), with the container named, stdout and
//! stderr read, no stdin and no terminal. The status channel tells how it
//! ended: `Success`, or `Failure` with the exit code among the causes
//! (reason `ExitCode`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use kube::Api;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a command's output is kept (its end).
pub const OUTPUT_LIMIT: usize = 4096;

/// Why a command could not be run or did not end well.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec in pod {pod} container {container}: {reason}")]
    Start {
        pod: String,
        container: String,
        reason: String,
    },
    #[error("exec in pod {pod} container {container}: no answer within {timeout:?} (the command is not stopped)")]
    Timeout {
        pod: String,
        container: String,
        timeout: Duration,
    },
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The exit code (0 on success); None when the status gave none.
    pub exit_code: Option<i32>,
    /// The end of stdout followed by stderr.
    pub output: String,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

/// Runs `command` in `container` of pod `namespace/pod` and waits at most
/// `timeout` for it to end.
pub async fn exec(
    client: kube::Client,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutcome, ExecError> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true)
        .tty(false);
    let full = format!("{namespace}/{pod}");
    let run = async {
        let mut attached = api
            .exec(pod, command.iter().map(String::as_str), &params)
            .await
            .map_err(|e| ExecError::Start {
                pod: full.clone(),
                container: container.to_owned(),
                reason: crate::k8s::client::describe(&e),
            })?;
        let stdout = attached.stdout();
        let stderr = attached.stderr();
        let status = attached.take_status();
        let output = read_both(stdout, stderr).await;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        Ok(outcome(status, output))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(ExecError::Timeout {
            pod: full,
            container: container.to_owned(),
            timeout,
        }),
    }
}

/// Reads both streams to their end: stdout then stderr, the last
/// [`OUTPUT_LIMIT`] bytes of the two.
async fn read_both<R: AsyncRead + Unpin>(mut out: Option<R>, mut err: Option<R>) -> String {
    let (mut kept_out, mut kept_err) = (Vec::new(), Vec::new());
    let mut a = [0u8; 4096];
    let mut b = [0u8; 4096];
    while out.is_some() || err.is_some() {
        tokio::select! {
            n = read_some(&mut out, &mut a), if out.is_some() => match n {
                Some(n) => keep(&mut kept_out, &a[..n]),
                None => out = None,
            },
            n = read_some(&mut err, &mut b), if err.is_some() => match n {
                Some(n) => keep(&mut kept_err, &b[..n]),
                None => err = None,
            },
        }
    }
    keep(&mut kept_out, &kept_err);
    String::from_utf8_lossy(&kept_out).into_owned()
}

/// One read; None at the end or on an error.
async fn read_some<R: AsyncRead + Unpin>(reader: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let r = reader.as_mut()?;
    match r.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    kept.extend_from_slice(bytes);
    if kept.len() > OUTPUT_LIMIT {
        let cut = kept.len() - OUTPUT_LIMIT;
        kept.drain(..cut);
    }
}

/// How the status channel says the command ended.
pub fn outcome(status: Option<Status>, output: String) -> ExecOutcome {
    let Some(status) = status else {
        return ExecOutcome {
            exit_code: None,
            output,
            failure: Some("the connection ended without a status".to_owned()),
        };
    };
    if status.status.as_deref() == Some("Success") {
        return ExecOutcome {
            exit_code: Some(0),
            output,
            failure: None,
        };
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.trim().parse::<i32>().ok())
        });
    let failure = match (code, status.message.as_deref()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(m)) if !m.is_empty() => m.to_owned(),
        (None, _) => format!("failed ({})", status.reason.as_deref().unwrap_or("no reason given")),
    };
    ExecOutcome {
        exit_code: code,
        output,
        failure: Some(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Option<Status> {
        Some(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn success_is_exit_zero() {
        let o = outcome(
            status(serde_json::json!({"status": "Success", "metadata": {}})),
            "hi".into(),
        );
        assert_eq!(o.exit_code, Some(0));
        assert_eq!(o.failure, None);
        assert_eq!(o.output, "hi");
    }

    #[test]
    fn failure_carries_the_exit_code() {
        let o = outcome(
            status(serde_json::json!({"status": "Failure", "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code: error executing command [false], exit code 3",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}})),
            String::new(),
        );
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.failure.as_deref(), Some("exited with code 3"));
        let o = outcome(
            status(serde_json::json!({"status": "Failure", "reason": "InternalError", "message": "no such file"})),
            String::new(),
        );
        assert_eq!(o.exit_code, None);
        assert_eq!(o.failure.as_deref(), Some("no such file"));
        assert!(outcome(None, String::new()).failure.is_some());
    }

    #[test]
    fn output_keeps_its_end() {
        let mut kept = Vec::new();
        keep(&mut kept, &[b'a'; 4000]);
        keep(&mut kept, &[b'b'; 200]);
        assert_eq!(kept.len(), OUTPUT_LIMIT);
        assert_eq!(kept[OUTPUT_LIMIT - 1], b'b');
        assert_eq!(kept[0], b'a');
    }
}
