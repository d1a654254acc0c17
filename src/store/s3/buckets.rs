//! Bucket-level requests: ListBuckets (IBM's `?extended` listing, with each bucket's location
//! constraint), CreateBucket (location constraint, IBM Key Protect `ibm-sse-kp-*` headers),
//! DeleteBucket, and what HEAD bucket and `GET ?location` tell of one bucket. IBM's extra
//! response headers and elements are read from the raw answer, which the SDK's output drops.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use super::super::buckets::{parse_bucket_list, BucketFacts, BucketInfo, NewBucket};
use super::super::StoreError;
use super::S3Store;

/// Keeps what the raw answer said that the SDK's output drops: IBM's `ibm-sse-kp-*` headers and
/// the body (ListBuckets' `LocationConstraint`, `IsTruncated`).
#[derive(Debug, Default, Clone)]
struct RawAnswer(Arc<Mutex<Captured>>);

#[derive(Debug, Default)]
struct Captured {
    /// `ibm-*` response headers.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<String> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn body(&self) -> String {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&g.body).into_owned()
    }
}

impl Intercept for RawAnswer {
    fn name(&self) -> &'static str {
        "CosmountRawAnswer"
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.headers = ctx
            .response()
            .headers()
            .iter()
            .filter(|(k, _)| k.starts_with("ibm-"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        // The body of a non-streaming answer is in memory once it has been deserialized.
        if let Some(bytes) = ctx.response().body().bytes() {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).body = bytes.to_vec();
        }
        Ok(())
    }
}

/// The service code of an SDK error, if the server sent one.
fn code<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<String> {
    e.as_service_error().and_then(|s| s.code()).map(str::to_string)
}

impl S3Store {
    /// The same connection, credentials and limits, for another bucket (an account mount's
    /// bucket); multipart journal and retention headers are set per bucket afterwards.
    pub fn for_bucket(&self, bucket: &str) -> S3Store {
        let mut s = self.clone();
        s.bucket = bucket.to_string();
        s.journal = None;
        s
    }

    /// ListBuckets, with IBM's `extended` listing (each bucket's location constraint) where the
    /// server has it; other servers ignore the parameter. Pages follow `marker`.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, StoreError> {
        let mut all: Vec<BucketInfo> = Vec::new();
        loop {
            let marker = all.last().map(|b| b.name.clone());
            let raw = RawAnswer::default();
            let out = self
                .call(|| async {
                    let marker = marker.clone();
                    self.client
                        .list_buckets()
                        .customize()
                        .interceptor(raw.clone())
                        .mutate_request(move |req| {
                            let uri = req.uri().to_string();
                            let sep = if uri.contains('?') { '&' } else { '?' };
                            let mut q = format!("{uri}{sep}extended");
                            if let Some(m) = &marker {
                                q.push_str("&marker=");
                                q.push_str(m);
                            }
                            let _ = req.set_uri(q);
                        })
                        .send()
                        .await
                        .map_err(|e| self.map_err("ListBuckets", "", e))
                })
                .await?;
            let (mut page, truncated) = parse_bucket_list(&raw.body());
            if page.is_empty() {
                // No raw body seen: take the SDK's reading (names and dates only).
                page = out
                    .buckets()
                    .iter()
                    .filter_map(|b| {
                        Some(BucketInfo {
                            name: b.name()?.to_string(),
                            created: b.creation_date().and_then(|d| std::time::SystemTime::try_from(*d).ok()),
                            location: None,
                        })
                    })
                    .collect();
            }
            let more = truncated && !page.is_empty() && all.len() < 100_000;
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// CreateBucket `name` with the mount's location constraint and Key Protect headers.
    pub async fn create_bucket(&self, name: &str, new: &NewBucket) -> Result<(), StoreError> {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        if let Some(crn) = &new.kp_root_key_crn {
            headers.push(("ibm-sse-kp-encryption-algorithm", new.kp_algorithm.clone()));
            headers.push(("ibm-sse-kp-customer-root-key-crn", crn.clone()));
        }
        self.call(|| async {
            let mut req = self.client.create_bucket().bucket(name);
            if let Some(lc) = &new.location_constraint {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(lc.as_str()))
                        .build(),
                );
            }
            let headers = headers.clone();
            let result = req
                .customize()
                .mutate_request(move |r| {
                    for (k, v) in &headers {
                        r.headers_mut().insert(*k, v.clone());
                    }
                })
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e) => Err(match code(&e).as_deref() {
                    Some("BucketAlreadyExists" | "BucketAlreadyOwnedByYou") => StoreError::BucketExists {
                        bucket: name.to_string(),
                    },
                    Some(
                        c @ ("InvalidBucketName"
                        | "InvalidLocationConstraint"
                        | "IllegalLocationConstraintException"
                        | "InvalidArgument"
                        | "TooManyBuckets"),
                    ) => StoreError::InvalidRequest {
                        op: "CreateBucket",
                        message: format!("{c}: {}", e.as_service_error().and_then(|s| s.message()).unwrap_or("")),
                    },
                    _ => self.map_err("CreateBucket", name, e),
                }),
            }
        })
        .await
    }

    /// DeleteBucket `name` (S3 refuses a bucket that still holds objects).
    pub async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        self.call(|| async {
            match self.client.delete_bucket().bucket(name).send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(match code(&e).as_deref() {
                    Some("BucketNotEmpty") => StoreError::BucketNotEmpty {
                        bucket: name.to_string(),
                    },
                    Some("NoSuchBucket") => StoreError::NotFound { key: name.to_string() },
                    _ => self.map_err("DeleteBucket", name, e),
                }),
            }
        })
        .await
    }

    /// HEAD bucket (IBM's `ibm-sse-kp-*` headers) and `GET ?location`.
    pub(super) async fn head_bucket_facts(&self) -> Result<BucketFacts, StoreError> {
        let raw = RawAnswer::default();
        self.call(|| async {
            self.client
                .head_bucket()
                .bucket(&self.bucket)
                .customize()
                .interceptor(raw.clone())
                .send()
                .await
                .map_err(|e| self.map_err("HeadBucket", "", e))
        })
        .await?;
        let location = self
            .call(|| async {
                self.client
                    .get_bucket_location()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(|e| self.map_err("GetBucketLocation", "", e))
            })
            .await
            .ok()
            .and_then(|o| o.location_constraint().map(|l| l.as_str().to_string()))
            .filter(|l| !l.is_empty());
        Ok(BucketFacts {
            location,
            kp_enabled: raw
                .header("ibm-sse-kp-enabled")
                .map(|v| v.trim().eq_ignore_ascii_case("true")),
            kp_root_key_crn: raw
                .header("ibm-sse-kp-crk-id")
                .or_else(|| raw.header("ibm-sse-kp-customer-root-key-crn")),
            kp_algorithm: raw.header("ibm-sse-kp-encryption-algorithm"),
        })
    }
}
