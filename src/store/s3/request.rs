//! How one S3 request is run, and what its failure is called.
//!
//! [`S3Store::call`] runs a request: it takes one of the `--max-connections` permits, puts the
//! request under its progress deadline (`--timeout`, see `store/deadline.rs`; attempts are
//! limited by `watchdog.rs`), and with an IBM API key makes sure a bearer token is held, refreshing
//! it once on a 401/403. Retries are the SDK's standard mode (jittered exponential backoff from 1 s
//! up to 20 s, up to `--max-attempts`, no client-wide quota): connection errors, timeouts,
//! 500/502/503/504 and throttling (`SlowDown`). This is safe for every operation cosmount sends:
//! reads are idempotent, a PutObject or UploadPart sent twice stores the same bytes, CopyObject
//! and DeleteObject are idempotent, and a CompleteMultipartUpload retried after a lost answer
//! either completes or reports NoSuchUpload (then the error reaches `close`). 4xx answers are not
//! retried.
//!
//! This is the only module that looks inside SDK errors. The mapping:
//! - no connection, DNS or TLS failure → [`StoreError::Unreachable`]; no bytes moved for the
//!   deadline → [`StoreError::TimedOut`];
//! - 404 on an object → `NotFound`; `NoSuchBucket` (any operation) → `NoSuchBucket`;
//! - 401/403, `AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch` → `AccessDenied`;
//! - 412 → `PreconditionFailed`;
//! - an answer that is not S3 (HTML, garbage) → `BadResponse`; anything else → `Other`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::super::{deadline, StoreError};
use super::S3Store;
use crate::creds::iam::TokenManager;
use crate::creds::CredError;
use crate::describe::error_chain;

/// Replaces the SigV4 signature with `Authorization: Bearer <IAM token>` (IBM API keys).
#[derive(Debug)]
pub(super) struct BearerAuth {
    pub(super) tokens: Arc<TokenManager>,
    pub(super) instance_id: Option<String>,
}

impl Intercept for BearerAuth {
    fn name(&self) -> &'static str {
        "IbmIamBearerAuth"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let token = self
            .tokens
            .current()
            .ok_or("the IAM token has expired and could not be refreshed")?;
        let headers = ctx.request_mut().headers_mut();
        headers.insert("authorization", format!("Bearer {token}"));
        headers.remove("x-amz-security-token");
        if let Some(id) = &self.instance_id {
            headers.insert("ibm-service-instance-id", id.clone());
        }
        Ok(())
    }
}

impl S3Store {
    /// Run one request: with IAM, make sure a token is held first, and when the service answers
    /// 401/403 (an expired or revoked token), refresh once and try once more. Attempts that move
    /// no bytes for `--request-timeout` are retried; the request fails with
    /// [`StoreError::TimedOut`] once it moved no bytes for `--timeout` (see `deadline.rs`).
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(self.attempt_limit, self.timeout, f).await
    }

    /// [`call`](Self::call) for requests the server may work on for a while before it answers
    /// (CopyObject, UploadPartCopy, CompleteMultipartUpload): one attempt may stay silent for the
    /// whole `--timeout`.
    pub(super) async fn call_patient<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(self.timeout, self.timeout, f).await
    }

    /// [`call_patient`](Self::call_patient) for a request the server may work on for `extra`
    /// longer than `--timeout` before it answers: a CompleteMultipartUpload of many parts, which
    /// some servers assemble in silence (S3 sends spaces meanwhile; moto and others do not).
    pub(super) async fn call_patient_for<T, F, Fut>(&self, extra: Duration, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let limit = self.timeout + extra;
        self.call_within(limit, limit, f).await
    }

    async fn call_within<T, F, Fut>(&self, attempt_limit: Duration, timeout: Duration, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        if let Some(earlier) = deadline::gave_up() {
            // The operation already met a silent or unreachable server: its error again, at once.
            return Err(earlier);
        }
        // Every request holds a permit while in flight (and while retried): the connection pool
        // never grows past --max-connections, whoever asks. The semaphore is never closed. The
        // wait ends early only when the whole mount moved nothing for --timeout.
        let waiting = deadline::Progress::new();
        let Ok(_permit) = deadline::until_idle(
            self.timeout,
            || waiting.idle().min(deadline::MOUNT.idle()),
            self.permits.acquire(),
        )
        .await
        else {
            let e = self.timed_out("every connection is taken by requests that get no answer");
            deadline::give_up(&e);
            return Err(e);
        };
        // Offline (an earlier request found the server silent and nothing came since): a probe.
        let limit = if deadline::offline() {
            deadline::PROBE.min(timeout)
        } else {
            timeout
        };
        let request = Arc::new(deadline::Request::new(attempt_limit.min(limit), limit));
        let sent = deadline::for_request(request.clone(), self.authorized(f));
        let e = match deadline::until_idle(limit, || request.progress.idle(), sent).await {
            Ok(Err(e @ (StoreError::Unreachable { .. } | StoreError::TimedOut { .. }))) => e,
            Ok(result) => return result,
            // Attempts failed outright (connection refused, reset) until the deadline.
            Err(_) => match request.last_failure() {
                Some(why) => StoreError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    message: format!("{why} (retried for {} s)", limit.as_secs()),
                },
                None if limit < timeout => StoreError::TimedOut {
                    endpoint: self.endpoint.clone(),
                    message: format!(
                        "still no answer within {} s (it stopped answering earlier; --timeout {} s)",
                        limit.as_secs(),
                        self.timeout.as_secs()
                    ),
                },
                None => self.timed_out("nothing moved"),
            },
        };
        deadline::give_up(&e);
        let why = match e {
            StoreError::Unreachable { .. } => "unreachable",
            _ => "no answer",
        };
        deadline::went_silent(&self.endpoint, why);
        Err(e)
    }

    fn timed_out(&self, why: &str) -> StoreError {
        StoreError::TimedOut {
            endpoint: self.endpoint.clone(),
            message: format!("{why} for {} s (--timeout), retries included", self.timeout.as_secs()),
        }
    }

    async fn authorized<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let Some(tm) = &self.tokens else { return f().await };
        let cred_err = |e: CredError| StoreError::Credentials { message: e.to_string() };
        tm.ensure().await.map_err(cred_err)?;
        let used = tm.current();
        match f().await {
            Err(StoreError::AccessDenied { .. }) => {
                tracing::info!("access denied with the current IAM token: refreshing it and retrying once");
                tm.force_refresh(used.as_deref()).await.map_err(cred_err)?;
                f().await
            }
            other => other,
        }
    }

    pub(super) fn map_err<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let endpoint = self.endpoint.clone();
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.as_service_error().and_then(|e| e.code()).map(str::to_string);
        let mut message = error_chain(&err);
        if message.contains("TLS handshake") || message.contains("InvalidContentType") {
            message.push_str(" (does the server speak plain http? then use an http:// endpoint URL)");
        }
        match (&err, status, code.as_deref()) {
            (SdkError::DispatchFailure(_), _, _) if message.contains("credentials") => {
                StoreError::Credentials { message }
            }
            (SdkError::DispatchFailure(d), _, _) if d.is_timeout() => StoreError::TimedOut { endpoint, message },
            (SdkError::TimeoutError(_), _, _) => StoreError::TimedOut { endpoint, message },
            (SdkError::DispatchFailure(_), _, _) => StoreError::Unreachable { endpoint, message },
            (_, _, Some("NoSuchBucket")) => StoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
                endpoint,
            },
            (_, _, Some("NoSuchKey")) | (_, Some(404), _) => StoreError::NotFound { key: key.to_string() },
            (_, _, Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken"))
            | (_, Some(401 | 403), _) => StoreError::AccessDenied {
                endpoint,
                message: code.unwrap_or(message),
            },
            (_, Some(412), _) | (_, _, Some("PreconditionFailed")) => {
                StoreError::PreconditionFailed { key: key.to_string() }
            }
            (SdkError::ResponseError(_), _, _) => StoreError::BadResponse { endpoint, message },
            (_, Some(s), None) if (200..300).contains(&s) => StoreError::BadResponse { endpoint, message },
            _ => StoreError::Other { op, message },
        }
    }
}
