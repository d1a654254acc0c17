//! The Prometheus endpoint: [`serve`] binds `--metrics-addr`, enables the registry, and answers
//! `GET /metrics` from a hyper HTTP/1 server on a thread of its own with a single-threaded
//! runtime, so a slow scraper never competes with file I/O for the mount's runtime.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::{enable, render};

/// Serving the metrics failed to start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The server thread or its runtime could not be started.
    #[error("cannot start the metrics server: {0}")]
    Start(std::io::Error),
}

/// Enable metrics and serve them at `http://ADDR/metrics` from a thread of their own. Binding
/// happens before this returns, so a taken port is reported before mounting. Returns the bound
/// address (useful with port 0).
pub fn serve(addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(ServeError::Start)?;
    enable();
    std::thread::Builder::new()
        .name("cosmount-metrics".into())
        .spawn(move || rt.block_on(accept_loop(listener)))
        .map_err(ServeError::Start)?;
    tracing::info!("serving metrics on http://{bound}/metrics");
    Ok(bound)
}

async fn accept_loop(listener: std::net::TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("the metrics server stopped: {e}");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!("metrics server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req| async move { Ok::<_, std::convert::Infallible>(answer(&req)) });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // A scraper that disconnects early is not worth a log line above debug.
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

fn answer<B>(req: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET | &http::Method::HEAD, "/metrics") => match render() {
            Some(text) => (
                http::StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            None => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "metrics could not be encoded\n".to_string(),
            ),
        },
        (&http::Method::GET | &http::Method::HEAD, "/") => (
            http::StatusCode::OK,
            "text/plain; charset=utf-8",
            "cosmount: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            http::StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        ),
    };
    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_metrics_paths() {
        let get = |p: &str| http::Request::get(p).body(()).expect("request");
        assert_eq!(answer(&get("/nope")).status(), http::StatusCode::NOT_FOUND);
        assert_eq!(answer(&get("/")).status(), http::StatusCode::OK);
    }
}
