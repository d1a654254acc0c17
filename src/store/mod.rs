//! The object-store seam: everything cosmount needs from S3, as one async trait.
//!
//! `fs/` talks only to [`ObjectStore`]; [`s3::S3Store`] implements it with aws-sdk-s3 and
//! [`memory::MemoryStore`] with a `BTreeMap` for unit tests. Methods are named after the S3
//! operations they stand for, and every failure is reduced here to a small set of kinds
//! ([`StoreError`]); only `s3.rs` ever looks at SDK errors, service codes or HTTP statuses.

pub mod buckets;
pub mod cos_policy;
pub mod deadline;
pub mod fault;
pub mod journal;
pub mod memory;
pub mod s3;
pub mod worm;

use std::collections::HashMap;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

/// Text of the first `<tag>…</tag>` in `xml`, trimmed (the small IBM answers, bucket listings).
pub(crate) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// What a listing or a HEAD says about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key in the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag as the server sent it (quotes included), if any.
    pub etag: Option<String>,
    /// Last-Modified.
    pub last_modified: SystemTime,
    /// User metadata (`x-amz-meta-*`, without the prefix, lower-case). Listings never carry it.
    pub metadata: HashMap<String, String>,
    /// Content-Type (HEAD only).
    pub content_type: Option<String>,
    /// Storage class, version and protection: from a HEAD only, and boxed, so that the many
    /// entries of a listing stay small to move (read it through [`ObjectMeta::extra`]).
    pub extra: Option<Box<worm::ObjectExtra>>,
}

impl ObjectMeta {
    /// Storage class, version and protection (all unknown for an object known from a listing).
    pub fn extra(&self) -> &worm::ObjectExtra {
        self.extra.as_deref().unwrap_or(&worm::NO_EXTRA)
    }
}

/// One ListObjectsV2 request.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    /// Only keys starting with this.
    pub prefix: String,
    /// Group keys sharing the next `delimiter` into common prefixes (we always use `/`).
    pub delimiter: Option<String>,
    /// Continuation token from the previous page.
    pub continuation: Option<String>,
    /// Page size (the server may return fewer); `None` means the server default (1000).
    pub max_keys: Option<i32>,
}

/// One page of a ListObjectsV2 answer.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects, in key order.
    pub objects: Vec<ObjectMeta>,
    /// Common prefixes (each ends with the delimiter), in key order.
    pub prefixes: Vec<String>,
    /// Token for the next page; `None` when the listing is complete.
    pub next: Option<String>,
}

/// Kinds of failure the filesystem layer distinguishes. Messages are complete sentences fit for
/// the log and the user; they never contain secrets.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("no such key: {key}")]
    NotFound { key: String },
    /// The bucket does not exist at this endpoint.
    #[error("bucket {bucket:?} does not exist at {endpoint}")]
    NoSuchBucket { bucket: String, endpoint: String },
    /// Credentials were rejected or lack permission.
    #[error("access denied by {endpoint}: {message}")]
    AccessDenied { endpoint: String, message: String },
    /// No usable credentials were found (or loading them failed).
    #[error("no usable credentials: {message}")]
    Credentials { message: String },
    /// A conditional request failed: the object changed under us.
    #[error("object {key} changed on the server (precondition failed)")]
    PreconditionFailed { key: String },
    /// The endpoint could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    /// The server moved no bytes for the request for `--timeout` (a hung server, a black-holed
    /// network), retries included; or an earlier request of the same operation timed out.
    #[error("no answer from {endpoint}: {message}")]
    TimedOut { endpoint: String, message: String },
    /// The endpoint answered with something that is not S3.
    #[error("{endpoint} did not answer like an S3 server: {message}")]
    BadResponse { endpoint: String, message: String },
    /// The service refused the request as invalid (HTTP 400).
    #[error("{op} refused: {message}")]
    InvalidRequest { op: &'static str, message: String },
    /// The request conflicts with the current state (HTTP 409).
    #[error("{op} conflicts: {message}")]
    Conflict { op: &'static str, message: String },
    /// CreateBucket: the name is taken (by this account or, bucket names being global, another).
    #[error("bucket {bucket:?} already exists (bucket names are shared by every account of the service)")]
    BucketExists { bucket: String },
    /// DeleteBucket: the bucket still holds objects.
    #[error("bucket {bucket:?} is not empty: delete its objects first")]
    BucketNotEmpty { bucket: String },
    /// The operation does not exist for this store.
    #[error("{op} is not supported by {store}")]
    NotSupported { op: &'static str, store: String },
    /// Anything else the service reported.
    #[error("{op} failed: {message}")]
    Other { op: &'static str, message: String },
}

/// What the server returned for one uploaded part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartTag {
    /// The part's ETag.
    pub etag: String,
    /// The part's CRC32 checksum (base64), repeated in CompleteMultipartUpload.
    pub crc32: Option<String>,
}

/// Options for a PutObject.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// User metadata to store with the object.
    pub metadata: HashMap<String, String>,
    /// Content-Type, if known.
    pub content_type: Option<String>,
}

/// The S3 operations cosmount uses. Implementations must be cheap to share (`Arc`).
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// HeadObject: size, ETag, Last-Modified and user metadata of `key`.
    async fn head_object(&self, key: &str) -> Result<ObjectMeta, StoreError>;

    /// ListObjectsV2: one page.
    async fn list_objects(&self, req: &ListRequest) -> Result<ListPage, StoreError>;

    /// GetObject with a byte range (clamped by the server at the end of the object). With
    /// `if_match`, fails with [`StoreError::PreconditionFailed`] when the ETag differs.
    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes, StoreError>;

    /// PutObject of a whole body (with an integrity checksum); returns the new ETag.
    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<Option<String>, StoreError>;

    /// DeleteObject (succeeds whether or not the key exists, as S3 does).
    async fn delete_object(&self, key: &str) -> Result<(), StoreError>;

    /// Delete many keys, with the outcome of each, in order. S3 sends DeleteObjects requests of
    /// up to 1 000 keys; the default deletes the keys one by one.
    async fn delete_objects(&self, keys: &[String]) -> Vec<Result<(), StoreError>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.delete_object(key).await);
        }
        out
    }

    /// CopyObject `src` → `dst` (up to 5 GiB). With `replace`, the copy gets exactly those
    /// metadata and Content-Type (`MetadataDirective: REPLACE`); otherwise the source's are kept.
    /// `if_match` guards against copying a source that changed.
    async fn copy_object(
        &self,
        src: &str,
        dst: &str,
        if_match: Option<&str>,
        replace: Option<&PutOptions>,
    ) -> Result<Option<String>, StoreError>;

    /// CreateMultipartUpload; returns the upload id.
    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String, StoreError>;

    /// UploadPart (with an integrity checksum).
    async fn upload_part(&self, key: &str, upload_id: &str, part: i32, body: Bytes) -> Result<PartTag, StoreError>;

    /// UploadPartCopy of `range` of `src` (guarded by `if_match`).
    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part: i32,
        src: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> Result<PartTag, StoreError>;

    /// CompleteMultipartUpload with `(part number, tag)` in order; returns the object's ETag.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError>;

    /// AbortMultipartUpload.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;

    /// A short description of where the store lives (bucket and endpoint), for messages.
    fn describe(&self) -> String;

    /// Which immutability scheme the bucket uses (`?object-lock`, IBM `?protection`).
    async fn bucket_worm(&self) -> Result<worm::Worm, StoreError> {
        Ok(worm::Worm::None)
    }

    /// HEAD and `GET ?location` of the bucket: its location, storage class and encryption.
    async fn bucket_facts(&self) -> Result<buckets::BucketFacts, StoreError> {
        Err(StoreError::NotSupported {
            op: "HeadBucket",
            store: self.describe(),
        })
    }

    /// IBM `PUT /{bucket}?protection`: give the bucket this retention policy (the caller has
    /// checked it with [`cos_policy::CosPolicy::check_change_from`]).
    async fn put_cos_protection(&self, _policy: &cos_policy::CosPolicy) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            op: "PutBucketProtectionConfiguration",
            store: self.describe(),
        })
    }

    /// PutObjectRetention.
    async fn put_retention(
        &self,
        _key: &str,
        _mode: &str,
        _until: SystemTime,
        _bypass: bool,
    ) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            op: "PutObjectRetention",
            store: self.describe(),
        })
    }

    /// PutObjectLegalHold.
    async fn put_legal_hold(&self, _key: &str, _on: bool) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            op: "PutObjectLegalHold",
            store: self.describe(),
        })
    }

    /// IBM `GET ?legalHold`: the object's legal holds.
    async fn cos_legal_holds(&self, _key: &str) -> Result<Vec<worm::LegalHold>, StoreError> {
        Err(StoreError::NotSupported {
            op: "ListLegalHolds",
            store: self.describe(),
        })
    }

    /// IBM `POST ?legalHold&add=` / `&remove=`.
    async fn cos_legal_hold(&self, _key: &str, _id: &str, _add: bool) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            op: "AddLegalHold",
            store: self.describe(),
        })
    }

    /// IBM `POST ?extendRetention` with `New-Retention-Period` or `New-Retention-Expiration-Date`.
    async fn cos_extend_retention(
        &self,
        _key: &str,
        _period: Option<i64>,
        _until: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        Err(StoreError::NotSupported {
            op: "ExtendObjectRetention",
            store: self.describe(),
        })
    }
}
