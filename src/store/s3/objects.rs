//! The [`ObjectStore`] operations as aws-sdk-s3 calls, each run through [`S3Store::call`]
//! (permit, deadline, IAM), with every upload carrying a CRC32 checksum and, on protected
//! buckets, the mount's retention headers. A GetObject body that breaks off after the headers is
//! retried here (the SDK cannot), inside the same request deadline. The multipart operations
//! are in `multipart.rs`, IBM's retention and hold calls in `ibm.rs`.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, MetadataDirective};
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockRetention, ObjectLockRetentionMode};
use bytes::Bytes;

use super::super::worm::{LegalHold, LockState, ObjectExtra, Worm};
use super::super::{ListPage, ListRequest, ObjectMeta, ObjectStore, PartTag, PutOptions, StoreError};
use super::ibm::RetentionHeaders;
use super::S3Store;
use crate::describe::error_chain;

/// Attempts at reading a GetObject body that breaks off.
const BODY_ATTEMPTS: u32 = 4;

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

    async fn delete_objects(&self, keys: &[String]) -> Vec<Result<(), StoreError>> {
        self.delete_batch(keys).await
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
        self.multipart_create(key, opts).await
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: i32, body: Bytes) -> Result<PartTag, StoreError> {
        self.multipart_upload_part(key, upload_id, part, body).await
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
        self.multipart_upload_part_copy(key, upload_id, part, src, range, if_match)
            .await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError> {
        self.multipart_complete(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.multipart_abort(key, upload_id).await
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

    async fn bucket_facts(&self) -> Result<crate::store::buckets::BucketFacts, StoreError> {
        self.head_bucket_facts().await
    }

    async fn put_cos_protection(&self, policy: &crate::store::cos_policy::CosPolicy) -> Result<(), StoreError> {
        self.call(|| self.cos_put_protection(policy)).await
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
