//! `S3Store`: the [`ObjectStore`] over aws-sdk-s3, for AWS, IBM COS and other S3-compatible servers.
//!
//! This is the only module that looks inside SDK errors. The mapping:
//! - no connection, DNS or TLS failure, or a timeout → [`StoreError::Unreachable`] (after the SDK's
//!   own retries, see [`S3Settings`]);
//!
//! Retries (the SDK's standard mode, jittered exponential backoff from 1 s up to 20 s, no
//! client-wide quota): connection errors, timeouts, 500/502/503/504 and throttling (`SlowDown`)
//! are retried up to `--max-attempts` times, each attempt limited by `--request-timeout`. This
//! is safe for every operation cosmount sends: reads are idempotent, a PutObject or UploadPart
//! sent twice stores the same bytes, CopyObject and DeleteObject are idempotent, and a
//! CompleteMultipartUpload retried after a lost answer either completes or reports NoSuchUpload
//! (then the error reaches `close`). 4xx answers (not found, denied, precondition failed) are not
//! retried. A GetObject body that breaks off after the headers is retried here (the SDK cannot).
//! - 404 on an object → `NotFound`; `NoSuchBucket` (any operation) → `NoSuchBucket`;
//! - 401/403, `AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch` → `AccessDenied`;
//! - 412 → `PreconditionFailed`;
//! - an answer that is not S3 (HTML, garbage) → `BadResponse`; anything else → `Other`.
//!
//! Uploads carry an integrity checksum: the SDK adds a CRC32 `x-amz-checksum-*` header to every
//! PutObject/UploadPart by default, which IBM COS protected buckets require.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

/// Attempts at reading a GetObject body that breaks off.
const BODY_ATTEMPTS: u32 = 4;
use bytes::Bytes;

use crate::creds::iam::TokenManager;
use crate::creds::{CredError, Resolved};

use super::deadline;
use super::s3_worm::RetentionHeaders;
use super::worm::{LegalHold, LockState, ObjectExtra, Worm, WormHeaders};
use super::{ListPage, ListRequest, ObjectMeta, ObjectStore, PartTag, PutOptions, StoreError};
use crate::describe::error_chain;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, MetadataDirective};
use aws_sdk_s3::types::{
    ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};

/// How to reach the bucket.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL (`None`: the SDK's default for the region).
    pub endpoint_url: Option<String>,
    /// Region (COS: the location such as `us-south`).
    pub region: Option<String>,
    /// Path-style addressing (needed by most local servers and handy for COS).
    pub force_path_style: bool,
    /// AWS shared-config profile.
    pub profile: Option<String>,
    /// Connect timeout for each attempt.
    pub connect_timeout: Duration,
    /// An attempt (one HTTP exchange) that moves no bytes for this long is abandoned (and retried).
    pub attempt_timeout: Duration,
    /// A request that moves no bytes for this long, retries included, fails (`TimedOut`).
    pub timeout: Duration,
    /// Attempts per request, including the first (SDK standard retry mode, jittered backoff).
    pub max_attempts: u32,
    /// Requests in flight at once over the whole mount: the bound of the shared connection pool.
    pub max_connections: usize,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            endpoint_url: None,
            region: None,
            force_path_style: false,
            profile: None,
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            max_connections: 64,
        }
    }
}

/// An S3 bucket reached through aws-sdk-s3.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    /// IAM bearer tokens, when the credentials are an IBM API key.
    tokens: Option<Arc<TokenManager>>,
    /// Retention and legal-hold headers every new object gets (mount options).
    upload_worm: WormHeaders,
    /// Multipart uploads started and not finished (crash recovery).
    journal: Option<Arc<super::journal::Journal>>,
    /// Requests in flight at once, over the whole mount (`--max-connections`).
    permits: Arc<tokio::sync::Semaphore>,
    /// Reads ListObjectsV2 answers faster than the SDK's XML decoder (`None`: the SDK reads them).
    fast_list: Option<super::list_xml::FastList>,
    /// Upload bodies are not hashed for the signature (see [`unsigned_payload`]).
    unsigned_payload: bool,
    /// `--request-timeout` and `--timeout` (see `deadline.rs`).
    attempt_limit: Duration,
    timeout: Duration,
}

/// Whether uploads to `endpoint_url` (`None`: the SDK's AWS endpoint) go with
/// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: over HTTPS, as botocore and IBM's COS SDKs do when the
/// request carries a checksum (every PutObject and UploadPart here carries a CRC32, which the
/// server checks). TLS protects the body in transit and the checksum its integrity; hashing it
/// for the signature as well was about half of the mount's CPU while writing. Over plain HTTP the
/// body stays signed, so that it cannot be altered on the way without the server noticing.
fn unsigned_payload(endpoint_url: Option<&str>) -> bool {
    endpoint_url.is_none_or(|u| u.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")))
}

/// Replaces the SigV4 signature with `Authorization: Bearer <IAM token>` (IBM API keys).
#[derive(Debug)]
struct BearerAuth {
    tokens: Arc<TokenManager>,
    instance_id: Option<String>,
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
    /// Build the SDK client from the settings and the chosen credentials. With an IBM API key,
    /// the first IAM token is fetched here, so a rejected key fails before mounting.
    pub async fn connect(settings: &S3Settings, creds: &Resolved) -> Result<Self, CredError> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        // Region: the flag, else AWS_REGION/AWS_DEFAULT_REGION, else the profile's; never the EC2
        // metadata service (off EC2 it only costs a timeout and a warning).
        let region = settings.region.clone().or_else(|| {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        });
        let region = match region {
            Some(r) => Some(r),
            None => {
                let mut p = aws_config::profile::ProfileFileRegionProvider::builder();
                if let Some(name) = &settings.profile {
                    p = p.profile_name(name);
                }
                aws_config::meta::region::ProvideRegion::region(&p.build())
                    .await
                    .map(|r| r.to_string())
            }
        };
        loader = loader.region(aws_config::Region::new(
            region.unwrap_or_else(|| "us-east-1".to_string()),
        ));
        let mut tokens = None;
        let mut bearer = None;
        match creds {
            Resolved::Hmac {
                access_key,
                secret_key,
                session_token,
                ..
            } => {
                let c = aws_credential_types::Credentials::new(
                    access_key.clone(),
                    secret_key.expose().to_string(),
                    session_token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "cosmount",
                );
                loader = loader.credentials_provider(c);
            }
            Resolved::ApiKey {
                api_key,
                instance_id,
                iam_endpoint,
                ..
            } => {
                let tm = Arc::new(TokenManager::new(iam_endpoint, api_key.clone())?);
                tm.ensure().await?;
                tm.spawn_refresher();
                // SigV4 still runs with placeholder keys; the interceptor replaces its header.
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    "ibm-iam",
                    "ibm-iam",
                    None,
                    None,
                    "cosmount-iam",
                ));
                bearer = Some(BearerAuth {
                    tokens: tm.clone(),
                    instance_id: instance_id.clone(),
                });
                tokens = Some(tm);
            }
            Resolved::AwsChain { profile, .. } => {
                if let Some(profile) = profile.as_ref().or(settings.profile.as_ref()) {
                    loader = loader.profile_name(profile);
                }
            }
        }
        let sdk = loader.load().await;
        // Attempts and requests are limited by progress (`watchdog.rs`, `call`), not duration: a
        // slow transfer that keeps moving is never cut off.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .build();
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .http_client(super::watchdog::client(settings.attempt_timeout))
            .force_path_style(settings.force_path_style)
            .timeout_config(timeouts)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1)))
            // No client-wide retry quota: every request is already bounded by its attempts and
            // time limits, and a mount must not start failing writes because others were retried.
            .retry_partition(
                aws_sdk_s3::config::retry::RetryPartition::custom("cosmount")
                    .token_bucket(aws_sdk_s3::config::retry::TokenBucket::unlimited())
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        builder = builder.interceptor(super::s3_metrics::MetricsInterceptor);
        if let Some(b) = bearer {
            builder = builder.interceptor(b);
        }
        let endpoint = settings.endpoint_url.clone().unwrap_or_else(|| {
            format!(
                "the AWS endpoint for region {}",
                sdk.region().map_or("us-east-1", |r| r.as_ref())
            )
        });
        Ok(Self {
            client: Client::from_conf(builder.build()),
            bucket: settings.bucket.clone(),
            endpoint,
            tokens,
            upload_worm: WormHeaders::default(),
            journal: None,
            permits: Arc::new(tokio::sync::Semaphore::new(settings.max_connections.max(1))),
            fast_list: super::list_xml::FastList::new(),
            unsigned_payload: unsigned_payload(settings.endpoint_url.as_deref()),
            attempt_limit: settings.attempt_timeout,
            timeout: settings.timeout.max(Duration::from_secs(1)),
        })
    }

    /// Record multipart uploads in `journal`, and abort those a previous mount left open.
    pub async fn with_journal(mut self, journal: super::journal::Journal) -> Self {
        let leftovers = journal.leftovers();
        let mut still_open = Vec::new();
        for (id, key) in leftovers {
            match self.abort_multipart(&key, &id).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {
                    tracing::info!(
                        key = key.as_str(),
                        "aborted a multipart upload left open by an earlier mount"
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        key = key.as_str(),
                        "cannot abort a multipart upload left by an earlier mount yet: {e}"
                    );
                    still_open.push((id, key));
                }
            }
        }
        journal.reset(&still_open);
        self.journal = Some(Arc::new(journal));
        self
    }

    /// Give every new object these retention and legal-hold headers.
    pub fn with_upload_worm(mut self, worm: WormHeaders) -> Self {
        self.upload_worm = worm;
        self
    }

    /// The bucket name.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Map an SDK error (for the raw requests of `s3_worm.rs`).
    pub(crate) fn map_sdk_error<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.map_err(op, key, err)
    }

    /// A request mutation adding the IBM `Retention-*` headers of the mount options (PutObject and
    /// CompleteMultipartUpload carry them; with no options it adds nothing).
    fn cos_headers(&self) -> impl Fn(&mut aws_sdk_s3::config::http::HttpRequest) + Send + Sync + 'static {
        let mut h: Vec<(&'static str, String)> = Vec::new();
        if let Some(p) = self.upload_worm.cos_period {
            h.push(("retention-period", p.to_string()));
        }
        if let Some(id) = &self.upload_worm.cos_hold_id {
            h.push(("retention-legal-hold-id", id.clone()));
        }
        move |req| {
            for (k, v) in &h {
                req.headers_mut().insert(*k, v.clone());
            }
        }
    }

    fn lock_mode(&self) -> Option<ObjectLockMode> {
        self.upload_worm.lock_mode.as_deref().map(ObjectLockMode::from)
    }

    fn lock_until(&self) -> Option<aws_smithy_types::DateTime> {
        self.upload_worm.lock_until.map(aws_smithy_types::DateTime::from)
    }

    /// One ListObjectsV2 of `prefix` (one key) for the check before mounting: two attempts
    /// only, so an endpoint that refuses connections is reported in seconds, not after the
    /// backoff of a full retry schedule.
    pub async fn probe(&self, prefix: &str) -> Result<(), StoreError> {
        self.call(|| async {
            self.client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter("/")
                .max_keys(1)
                .customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default()
                        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2)),
                )
                .send()
                .await
                .map_err(|e| self.map_err("ListObjectsV2", prefix, e))?;
            Ok(())
        })
        .await
    }

    /// The IAM token manager, when authenticating with an IBM API key.
    pub fn tokens(&self) -> Option<&Arc<TokenManager>> {
        self.tokens.as_ref()
    }

    /// Run one request: with IAM, make sure a token is held first, and when the service answers
    /// 401/403 (an expired or revoked token), refresh once and try once more. Attempts that move
    /// no bytes for `--request-timeout` are retried; the request fails with
    /// [`StoreError::TimedOut`] once it moved no bytes for `--timeout` (see `deadline.rs`).
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(self.attempt_limit, f).await
    }

    /// [`call`](Self::call) for requests the server may work on for a while before it answers
    /// (CopyObject, UploadPartCopy, CompleteMultipartUpload): one attempt may stay silent for the
    /// whole `--timeout`.
    async fn call_patient<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.call_within(self.timeout, f).await
    }

    async fn call_within<T, F, Fut>(&self, attempt_limit: Duration, f: F) -> Result<T, StoreError>
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
            deadline::PROBE.min(self.timeout)
        } else {
            self.timeout
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
                None if limit < self.timeout => StoreError::TimedOut {
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

    /// The underlying SDK client (tests and tools use it to check the bucket's state).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `x-amz-copy-source` for `key`: bucket and key, the key percent-encoded except `/`.
    fn copy_source(&self, key: &str) -> String {
        let mut out = format!("{}/", self.bucket);
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn map_err<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
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

fn to_system_time(t: Option<&aws_smithy_types::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

impl S3Store {
    /// One GetObject of `range`, its body read whole (and checked against Content-Length).
    async fn get_range_once(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes, StoreError> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // Asking at or past the end of the object: nothing to read.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(416) => return Ok(Bytes::new()),
            Err(e) => return Err(self.map_err("GetObject", key, e)),
        };
        let expected = out.content_length().map(|n| n.max(0) as usize);
        match read_body(out.body, expected).await {
            Ok(body) if expected.is_none_or(|n| n == body.len()) => Ok(body),
            Ok(body) => Err(StoreError::Unreachable {
                endpoint: self.endpoint.clone(),
                message: format!("the body of {key} was cut short ({} of {expected:?} bytes)", body.len()),
            }),
            Err(e) => Err(StoreError::Unreachable {
                endpoint: self.endpoint.clone(),
                message: format!("reading the body of {key} failed: {}", error_chain(&e)),
            }),
        }
    }
}

/// Read a body into one buffer sized from Content-Length, freeing each network chunk as it is
/// copied (collecting the chunks first would hold the body twice, and the small chunks left in
/// the allocator's arenas would keep RSS well above what the memory budget counts).
async fn read_body(
    mut body: aws_sdk_s3::primitives::ByteStream,
    expected: Option<usize>,
) -> Result<Bytes, aws_sdk_s3::primitives::ByteStreamError> {
    let mut buf = Vec::with_capacity(expected.unwrap_or(0));
    crate::daemon::prefault(&mut buf);
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(Bytes::from(buf))
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn head_object(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.call(|| async {
            let cos = RetentionHeaders::default();
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .customize()
                .interceptor(cos.clone())
                .send()
                .await
                .map_err(|e| self.map_err("HeadObject", key, e))?;
            let lock = LockState {
                mode: out.object_lock_mode().map(|m| m.as_str().to_string()),
                retain_until: out
                    .object_lock_retain_until_date()
                    .and_then(|d| SystemTime::try_from(*d).ok()),
                legal_hold: out
                    .object_lock_legal_hold_status()
                    .map(|s| *s == ObjectLockLegalHoldStatus::On),
            };
            let cos = cos.0.lock().map(|c| c.clone()).unwrap_or_default();
            Ok(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().map(str::to_string),
                last_modified: to_system_time(out.last_modified()),
                metadata: out.metadata().cloned().unwrap_or_default(),
                content_type: out.content_type().map(str::to_string),
                extra: Some(Box::new(ObjectExtra {
                    storage_class: out.storage_class().map(|s| s.as_str().to_string()),
                    version_id: out.version_id().map(str::to_string),
                    lock,
                    cos,
                })),
            })
        })
        .await
    }

    async fn list_objects(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        self.call(|| async {
            let mut op = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&req.prefix)
                .set_delimiter(req.delimiter.clone())
                .set_continuation_token(req.continuation.clone())
                .set_max_keys(req.max_keys)
                .customize();
            if let Some(fast) = &self.fast_list {
                op = op.interceptor(fast.clone());
            }
            let mut out = op
                .send()
                .await
                .map_err(|e| self.map_err("ListObjectsV2", &req.prefix, e))?;
            let next = match out.is_truncated {
                Some(true) => out.next_continuation_token.take().filter(|t| !t.is_empty()),
                _ => None,
            };
            let objects = out
                .contents
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| {
                    Some(ObjectMeta {
                        last_modified: to_system_time(o.last_modified()),
                        size: o.size.unwrap_or(0).max(0) as u64,
                        etag: o.e_tag,
                        key: o.key?,
                        metadata: Default::default(),
                        content_type: None,
                        extra: Default::default(),
                    })
                })
                .collect();
            let prefixes = out
                .common_prefixes
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.prefix)
                .collect();
            Ok(ListPage {
                objects,
                prefixes,
                next,
            })
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes, StoreError> {
        // The SDK retries failed requests, but not a body that breaks off after the headers
        // arrived: retry those here, so a flaky connection costs time, never wrong or missing
        // bytes. All of it is one request under `--timeout`.
        self.call(|| async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.get_range_once(key, range.clone(), if_match).await {
                    Err(StoreError::Unreachable { message, .. })
                        if attempt < BODY_ATTEMPTS && message.contains("body") =>
                    {
                        tracing::debug!(key, attempt, "retrying a broken GetObject body: {message}");
                        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<Option<String>, StoreError> {
        self.call(|| async {
            let metadata = (!opts.metadata.is_empty()).then(|| opts.metadata.clone());
            let mut op = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(ByteStream::from(body.clone()))
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .set_metadata(metadata)
                .set_content_type(opts.content_type.clone())
                .set_object_lock_mode(self.lock_mode())
                .set_object_lock_retain_until_date(self.lock_until())
                .customize()
                .mutate_request(self.cos_headers());
            if self.unsigned_payload {
                op = op.disable_payload_signing();
            }
            let out = op.send().await.map_err(|e| self.map_err("PutObject", key, e))?;
            Ok(out.e_tag().map(str::to_string))
        })
        .await
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.call(|| async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.map_err("DeleteObject", key, e))?;
            Ok(())
        })
        .await
    }

    async fn copy_object(
        &self,
        src: &str,
        dst: &str,
        if_match: Option<&str>,
        replace: Option<&PutOptions>,
    ) -> Result<Option<String>, StoreError> {
        self.call_patient(|| async {
            let mut req = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(dst)
                .copy_source(self.copy_source(src))
                .set_copy_source_if_match(if_match.map(str::to_string));
            if let Some(opts) = replace {
                req = req
                    .metadata_directive(MetadataDirective::Replace)
                    .set_metadata(Some(opts.metadata.clone()))
                    .set_content_type(opts.content_type.clone());
            }
            let out = req.send().await.map_err(|e| self.map_err("CopyObject", src, e))?;
            Ok(out.copy_object_result().and_then(|r| r.e_tag()).map(str::to_string))
        })
        .await
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String, StoreError> {
        self.call(|| async {
            let metadata = (!opts.metadata.is_empty()).then(|| opts.metadata.clone());
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .set_metadata(metadata)
                .set_content_type(opts.content_type.clone())
                .set_object_lock_mode(self.lock_mode())
                .set_object_lock_retain_until_date(self.lock_until())
                .send()
                .await
                .map_err(|e| self.map_err("CreateMultipartUpload", key, e))?;
            if let (Some(j), Some(id)) = (&self.journal, out.upload_id()) {
                j.started(id, key);
            }
            out.upload_id()
                .map(str::to_string)
                .ok_or_else(|| StoreError::BadResponse {
                    endpoint: self.endpoint.clone(),
                    message: "CreateMultipartUpload returned no upload id".into(),
                })
        })
        .await
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: i32, body: Bytes) -> Result<PartTag, StoreError> {
        self.call(|| async {
            let mut op = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(body.clone()))
                .customize();
            if self.unsigned_payload {
                op = op.disable_payload_signing();
            }
            let out = op.send().await.map_err(|e| self.map_err("UploadPart", key, e))?;
            Ok(PartTag {
                etag: out.e_tag().unwrap_or_default().to_string(),
                crc32: out.checksum_crc32().map(str::to_string),
            })
        })
        .await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part: i32,
        src: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> Result<PartTag, StoreError> {
        self.call_patient(|| async {
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part)
                .copy_source(self.copy_source(src))
                .copy_source_range(format!("bytes={}-{}", range.start, range.end.saturating_sub(1)))
                .set_copy_source_if_match(if_match.map(str::to_string))
                .send()
                .await
                .map_err(|e| self.map_err("UploadPartCopy", src, e))?;
            let result = out.copy_part_result();
            Ok(PartTag {
                etag: result.and_then(|r| r.e_tag()).unwrap_or_default().to_string(),
                crc32: result.and_then(|r| r.checksum_crc32()).map(str::to_string),
            })
        })
        .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError> {
        self.call_patient(|| async {
            let parts = parts
                .iter()
                .cloned()
                .map(|(n, t)| {
                    CompletedPart::builder()
                        .part_number(n)
                        .e_tag(t.etag)
                        .set_checksum_crc32(t.crc32)
                        .build()
                })
                .collect();
            let out = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .customize()
                .mutate_request(self.cos_headers())
                .send()
                .await
                .map_err(|e| self.map_err("CompleteMultipartUpload", key, e))?;
            if let Some(j) = &self.journal {
                j.ended(upload_id);
            }
            Ok(out.e_tag().map(str::to_string))
        })
        .await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.call(|| async {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(|e| self.map_err("AbortMultipartUpload", key, e))?;
            if let Some(j) = &self.journal {
                j.ended(upload_id);
            }
            Ok(())
        })
        .await
    }

    fn describe(&self) -> String {
        format!("bucket {:?} at {}", self.bucket, self.endpoint)
    }

    async fn bucket_worm(&self) -> Result<Worm, StoreError> {
        self.call(|| async {
            let lock = self
                .client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await;
            if let Ok(out) = lock {
                if let Some(conf) = out.object_lock_configuration() {
                    let rule = conf.rule().and_then(|r| r.default_retention());
                    return Ok(Worm::ObjectLock {
                        default_mode: rule.and_then(|r| r.mode()).map(|m| m.as_str().to_string()),
                        default_days: rule.and_then(|r| r.days()),
                        default_years: rule.and_then(|r| r.years()),
                    });
                }
            }
            Ok(self.cos_protection().await.unwrap_or_default())
        })
        .await
    }

    async fn put_retention(&self, key: &str, mode: &str, until: SystemTime, bypass: bool) -> Result<(), StoreError> {
        self.call(|| async {
            let retention = ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::from(mode))
                .retain_until_date(aws_smithy_types::DateTime::from(until))
                .build();
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(key)
                .retention(retention)
                .set_bypass_governance_retention(bypass.then_some(true))
                .send()
                .await
                .map_err(|e| self.map_err("PutObjectRetention", key, e))?;
            Ok(())
        })
        .await
    }

    async fn put_legal_hold(&self, key: &str, on: bool) -> Result<(), StoreError> {
        self.call(|| async {
            let status = if on {
                ObjectLockLegalHoldStatus::On
            } else {
                ObjectLockLegalHoldStatus::Off
            };
            self.client
                .put_object_legal_hold()
                .bucket(&self.bucket)
                .key(key)
                .legal_hold(ObjectLockLegalHold::builder().status(status).build())
                .send()
                .await
                .map_err(|e| self.map_err("PutObjectLegalHold", key, e))?;
            Ok(())
        })
        .await
    }

    async fn cos_legal_holds(&self, key: &str) -> Result<Vec<LegalHold>, StoreError> {
        self.call(|| self.cos_list_holds(key)).await
    }

    async fn cos_legal_hold(&self, key: &str, id: &str, add: bool) -> Result<(), StoreError> {
        self.call(|| self.cos_change_hold(key, id, add)).await
    }

    async fn cos_extend_retention(
        &self,
        key: &str,
        period: Option<i64>,
        until: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.call(|| self.cos_extend(key, period, until)).await
    }
}

#[cfg(test)]
mod tests {
    use super::unsigned_payload;

    #[test]
    fn upload_bodies_are_signed_only_over_plain_http() {
        assert!(unsigned_payload(None), "the SDK's AWS endpoints are HTTPS");
        assert!(unsigned_payload(Some(
            "https://s3.eu-de.cloud-object-storage.appdomain.cloud"
        )));
        assert!(unsigned_payload(Some("HTTPS://s3.example.com:8443")));
        assert!(!unsigned_payload(Some("http://127.0.0.1:9000")));
        assert!(!unsigned_payload(Some("http")));
        assert!(!unsigned_payload(Some("")));
    }
}
