//! Multipart uploads as aws-sdk-s3 calls: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload and AbortMultipartUpload, each run through [`S3Store::call`] (the
//! copies and the completion through `call_patient`, whose deadline allows for the server's
//! work, and for a completion 0.1 s more per part). Every part carries a CRC32 checksum; the upload carries the mount's retention headers;
//! the multipart journal records each upload from its creation until it is completed or aborted.
//! The [`ObjectStore`](super::super::ObjectStore) methods in `objects.rs` call these.

use std::ops::Range;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::super::{PartTag, PutOptions, StoreError};
use super::S3Store;

impl S3Store {
    pub(super) async fn multipart_create(&self, key: &str, opts: &PutOptions) -> Result<String, StoreError> {
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

    pub(super) async fn multipart_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: i32,
        body: Bytes,
    ) -> Result<PartTag, StoreError> {
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

    pub(super) async fn multipart_upload_part_copy(
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

    pub(super) async fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError> {
        // Assembling takes time in proportion to the parts: 0.1 s each on top of --timeout
        // (a 2 GiB object of 256 parts: 26 s more; moto on a busy machine needed over 30 s).
        let extra = std::time::Duration::from_millis(100 * parts.len() as u64);
        self.call_patient_for(extra, || async {
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

    pub(super) async fn multipart_abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
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
}
