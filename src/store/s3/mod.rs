//! `S3Store`: the [`ObjectStore`](super::ObjectStore) over aws-sdk-s3, for AWS, IBM COS and
//! other S3-compatible servers.
//!
//! This folder is the only place that knows the SDK:
//! - `mod.rs` (here): the settings, the store and how its SDK client is built;
//! - [`request`]: how one request is run (a permit of `--max-connections`, the progress
//!   deadline, IAM bearer tokens) and what its failure is called ([`StoreError`]);
//! - [`objects`]: the [`ObjectStore`](super::ObjectStore) operations as SDK calls;
//! - [`multipart`]: the multipart upload operations `objects` calls;
//! - [`watchdog`]: the HTTP client under the SDK, whose attempts end when no bytes move;
//! - [`list_xml`]: a fast reader for ListObjectsV2 answers;
//! - [`buckets`]: ListBuckets, CreateBucket, DeleteBucket and what a bucket is (location, Key Protect);
//! - [`ibm`]: IBM COS retention and legal-hold operations the SDK does not model;
//! - [`metrics`]: the interceptor that counts requests, retries, errors and bytes.
//!
//! Uploads carry an integrity checksum: the SDK adds a CRC32 `x-amz-checksum-*` header to every
//! PutObject/UploadPart by default, which IBM COS protected buckets require.

mod batch;
mod buckets;
mod ibm;
mod list_xml;
mod metrics;
mod multipart;
mod objects;
mod request;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ObjectLockMode;
use aws_sdk_s3::Client;

use super::worm::WormHeaders;
use super::{ObjectStore, StoreError};
use crate::creds::iam::TokenManager;
use crate::creds::{CredError, Resolved};
use request::BearerAuth;

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
    fast_list: Option<list_xml::FastList>,
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
            .http_client(watchdog::client(settings.attempt_timeout))
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
        builder = builder.interceptor(metrics::MetricsInterceptor);
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
            fast_list: list_xml::FastList::new(),
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

    /// Map an SDK error (for the raw requests of `ibm.rs`).
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
