//! The HTTP client under the SDK, with an attempt time limit that follows progress.
//!
//! [`client`] builds the SDK's default HTTPS client (hyper 1, rustls with aws-lc, the same as
//! `aws-sdk-s3`'s `default-https-client`) and wraps each connector in a [`Watchdog`]:
//! - request bodies are handed to hyper in pieces of at most [`PIECE`] bytes, and each piece
//!   taken marks progress (hyper takes more only as the socket drains, so a slow upload shows
//!   progress all along, and a stalled one stops showing it);
//! - response headers and each piece of a response body mark progress;
//! - an attempt that shows no progress for its limit fails: before the answer's headers as a
//!   connector timeout, which the SDK retries; while reading a body as a body error (the SDK
//!   retries those for small answers, `S3Store` for GetObject bodies);
//! - once an attempt has handed over its whole request body, it waits for the answer up to the
//!   request's deadline (`--timeout`), not the attempt limit: the last bytes handed to the
//!   socket may still be in buffers on the way (megabytes, on a fast local link in front of a
//!   slow one), draining at the network's pace where nothing here can see it.
//!
//! Progress goes to the attempt's clock, the request's ([`deadline::current_request`]) and the
//! mount's (see `deadline.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::super::deadline::{self, Progress};

/// Largest piece of a request body handed to hyper at once.
pub const PIECE: usize = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The SDK's default HTTPS client, each connector behind a [`Watchdog`] with `attempt_limit` for
/// requests sent outside [`deadline::for_request`].
pub fn client(attempt_limit: Duration) -> SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    let inner = Builder::new().build_with_connector_fn(
        |settings: Option<&HttpConnectorSettings>, components: Option<&RuntimeComponents>| {
            let mut conn = ConnectorBuilder::default()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
            conn.set_connector_settings(settings.cloned());
            if let Some(c) = components {
                conn.set_sleep_impl(c.sleep_impl());
            }
            conn.set_proxy_config(Some(ProxyConfig::from_env()));
            conn.build()
        },
    );
    SharedHttpClient::new(WatchedClient { inner, attempt_limit })
}

/// The default client (which keeps one connection pool per connector settings), its connectors
/// handed out behind a [`Watchdog`].
#[derive(Debug)]
struct WatchedClient {
    inner: SharedHttpClient,
    attempt_limit: Duration,
}

impl HttpClient for WatchedClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(Watchdog {
            inner: self.inner.http_connector(settings, components),
            attempt_limit: self.attempt_limit,
        })
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

/// A connector whose attempts fail after moving no bytes for their limit.
#[derive(Debug, Clone)]
pub struct Watchdog {
    inner: SharedHttpConnector,
    attempt_limit: Duration,
}

/// Where a body's progress is recorded.
#[derive(Clone, Debug)]
struct Marks {
    attempt: Progress,
    request: Option<Arc<deadline::Request>>,
    /// Bytes come from the server (a response), not from us.
    heard: bool,
    /// The request body has been handed over whole.
    sent_all: Arc<std::sync::atomic::AtomicBool>,
}

impl Marks {
    /// `n` more bytes moved, `upto` in this body so far.
    fn mark(&self, upto: u64) {
        self.attempt.mark();
        if let Some(r) = &self.request {
            if self.heard {
                r.progress.mark();
            } else {
                r.sent(upto);
            }
        }
        deadline::MOUNT.mark();
        if self.heard {
            deadline::heard();
        }
    }

    fn response(mut self) -> Self {
        self.heard = true;
        self
    }
}

impl HttpConnector for Watchdog {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let current = deadline::current_request();
        let limit = current.as_ref().map_or(self.attempt_limit, |r| r.attempt_limit);
        let answer_limit = current.as_ref().map_or(limit, |r| r.answer_limit);
        if let Some(r) = &current {
            r.attempt_failed(None);
        }
        let marks = Marks {
            attempt: Progress::new(),
            request: current,
            heard: false,
            sent_all: Arc::default(),
        };
        // A body of one piece or less is handed to hyper as it is (in memory, sent with the
        // headers): it fits the socket's buffers at once, so watching it would show nothing.
        if request.body().content_length().is_none_or(|n| n > PIECE as u64) {
            let body = request.take_body();
            *request.body_mut() = SdkBody::from_body_1_x(Watched::new(body, marks.clone(), None));
        }
        let sent = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let attempt = marks.attempt.clone();
            let sent_all = marks.sent_all.clone();
            // Measured against the answer limit once the body is handed over: the idle time is
            // scaled so that the one limit `until_idle` knows stands for both.
            let idle = || {
                let idle = attempt.idle();
                if sent_all.load(std::sync::atomic::Ordering::Relaxed) {
                    idle.mul_f64(limit.as_secs_f64() / answer_limit.as_secs_f64().max(0.001))
                } else {
                    idle
                }
            };
            match deadline::until_idle(limit, idle, sent).await {
                Ok(Ok(mut response)) => {
                    let marks = marks.response();
                    marks.mark(0);
                    let body = response.take_body();
                    *response.body_mut() = SdkBody::from_body_1_x(Watched::new(body, marks, Some(limit)));
                    Ok(response)
                }
                Ok(Err(e)) => {
                    if let Some(r) = &marks.request {
                        r.attempt_failed(Some(crate::describe::error_chain(&e)));
                    }
                    Err(e)
                }
                Err(_) => Err(ConnectorError::timeout(
                    format!("no bytes moved for {} s", attempt.idle().as_secs()).into(),
                )),
            }
        })
    }
}

/// A body whose pieces mark progress; with a limit, reading it fails once no piece came for
/// that long.
struct Watched {
    inner: SdkBody,
    /// The rest of a large piece, handed out [`PIECE`] bytes at a time.
    rest: Bytes,
    /// Bytes handed out so far.
    moved: u64,
    marks: Marks,
    limit: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Watched {
    fn new(inner: SdkBody, marks: Marks, limit: Option<Duration>) -> Self {
        Self {
            inner,
            rest: Bytes::new(),
            moved: 0,
            marks,
            limit,
            timer: None,
        }
    }

    /// A piece of at most [`PIECE`] bytes from `data`, keeping the rest for later.
    fn piece(&mut self, mut data: Bytes) -> Frame<Bytes> {
        if data.len() > PIECE {
            self.rest = data.split_off(PIECE);
        }
        self.moved += data.len() as u64;
        self.marks.mark(self.moved);
        // hyper stops asking once the body says it has ended: this piece may be the last call.
        if self.rest.is_empty() && self.inner.is_end_stream() {
            self.marks.sent_all.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Frame::data(data)
    }

    /// Pending: fail if nothing moved for the limit, else make sure this task is woken then.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(limit) = self.limit else { return Poll::Pending };
        loop {
            let idle = self.marks.attempt.idle();
            if idle >= limit {
                return Poll::Ready(Some(Err(format!("no bytes received for {} s", idle.as_secs()).into())));
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit - idle)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if !this.rest.is_empty() {
            let rest = std::mem::take(&mut this.rest);
            return Poll::Ready(Some(Ok(this.piece(rest))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer = None;
                match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(this.piece(data)))),
                    Err(trailers) => Poll::Ready(Some(Ok(trailers))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                this.marks.sent_all.store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => this.check_stall(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = Body::size_hint(&self.inner);
        let extra = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + extra);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn marks() -> Marks {
        Marks {
            attempt: Progress::new(),
            request: Some(Arc::new(deadline::Request::new(
                Duration::from_secs(1),
                Duration::from_secs(2),
            ))),
            heard: false,
            sent_all: Arc::default(),
        }
    }

    #[tokio::test]
    async fn a_large_body_goes_in_pieces_with_every_byte_and_its_length() {
        let data: Vec<u8> = (0..(3 * PIECE + 17)).map(|i| (i % 251) as u8).collect();
        let body = Watched::new(SdkBody::from(data.clone()), marks(), None);
        assert_eq!(Body::size_hint(&body).exact(), Some(data.len() as u64));
        let mut body = std::pin::pin!(body);
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Some(frame) = body.frame().await {
            let piece = frame.expect("frame").into_data().expect("data");
            assert!(piece.len() <= PIECE);
            got.extend_from_slice(&piece);
            pieces += 1;
        }
        assert_eq!(pieces, 4);
        assert!(got == data, "bytes changed on the way");
    }

    #[tokio::test]
    async fn a_silent_response_body_fails_after_its_limit() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let inner = SdkBody::from_body_1_x(stream);
        let started = std::time::Instant::now();
        let mut body = std::pin::pin!(Watched::new(inner, marks(), Some(Duration::from_millis(300))));
        let e = body.frame().await.expect("an error, not the end").expect_err("stalled");
        assert!(e.to_string().contains("no bytes received"), "{e}");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
