//! The controller's HTTP endpoints: `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (its watches have
//! started).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    pub metrics: Metrics,
    ready: AtomicBool,
}

impl Health {
    /// Marks the controller ready (its reconcilers are watching).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn answer(health: &Health, req: &Request<Incoming>) -> (StatusCode, &'static str, String) {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            health.metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if health.is_ready() => (StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n".into()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds `addr`; the returned future serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let run = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (status, kind, body) = answer(&health, &req);
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
                        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
                    }
                    async move { Ok::<_, Infallible>(resp) }
                });
                // A client that goes away mid-request is not an error of ours.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    Ok((bound, run))
}

/// New health state and its endpoints bound on `listen` (the `--listen`
/// option named when the address cannot be bound); the future serves.
pub async fn start(
    listen: SocketAddr,
) -> Result<(Arc<Health>, SocketAddr, impl std::future::Future<Output = ()>), crate::k8s::K8sError> {
    let health = Arc::new(Health::default());
    let (bound, serving) = serve(listen, health.clone())
        .await
        .map_err(|e| crate::k8s::K8sError::InvalidOption(format!("--listen {listen}: {e}")))?;
    Ok((health, bound, serving))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let health = Arc::new(Health::default());
        let (addr, run) = serve("127.0.0.1:0".parse().unwrap(), health.clone()).await.unwrap();
        tokio::spawn(run);
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready();
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        health
            .metrics
            .add(super::super::metrics::names::BACKUPS, &[("phase", "Completed")], 1.0);
        let m = get(addr, "/metrics").await;
        assert!(m.contains("cairn_backups_total{phase=\"Completed\"} 1"), "{m}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
    }
}
