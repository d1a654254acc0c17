//! `MemoryStore`: an in-memory [`ObjectStore`] for unit tests.
//!
//! It follows ListObjectsV2 semantics closely enough to exercise the pitfalls of building
//! directories from listings: keys are ordered bytewise, common prefixes are grouped at the
//! delimiter and count once towards the page size, continuation tokens resume after the last
//! key or prefix returned. The page size can be capped to force pagination in tests, and every
//! operation is counted so tests can assert how many requests a filesystem call cost. Its own
//! unit tests are in `memory/tests.rs`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ListPage, ListRequest, ObjectMeta, ObjectStore, PartTag, PutOptions, StoreError};

#[derive(Clone, Debug)]
struct Stored {
    body: Bytes,
    meta: ObjectMeta,
}

/// Per-operation request counters.
#[derive(Debug, Default)]
pub struct OpCounts {
    pub head: AtomicUsize,
    pub list: AtomicUsize,
    pub get: AtomicUsize,
    pub put: AtomicUsize,
    pub delete: AtomicUsize,
    pub copy: AtomicUsize,
    pub create_multipart: AtomicUsize,
    pub upload_part: AtomicUsize,
    pub upload_part_copy: AtomicUsize,
    pub complete: AtomicUsize,
    pub abort: AtomicUsize,
}

#[derive(Debug)]
struct Upload {
    key: String,
    opts: PutOptions,
    parts: BTreeMap<i32, Bytes>,
}

/// S3's smallest part (all parts but the last).
pub const MIN_PART: usize = 5 * 1024 * 1024;

/// An in-memory bucket.
#[derive(Debug)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Stored>>,
    uploads: Mutex<HashMap<String, Upload>>,
    max_page: usize,
    etag_seq: AtomicU64,
    /// Request counters, for tests.
    pub counts: OpCounts,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty bucket with S3's page size of 1000.
    pub fn new() -> Self {
        Self::with_page_size(1000)
    }

    /// An empty bucket whose listings never return more than `max_page` entries per page.
    pub fn with_page_size(max_page: usize) -> Self {
        Self {
            objects: Mutex::new(BTreeMap::new()),
            uploads: Mutex::new(HashMap::new()),
            max_page: max_page.max(1),
            etag_seq: AtomicU64::new(1),
            counts: OpCounts::default(),
        }
    }

    /// Store `body` under `key` directly (an out-of-band write by another client).
    pub fn insert(&self, key: &str, body: impl Into<Bytes>) {
        let body = body.into();
        let meta = ObjectMeta {
            key: key.to_string(),
            size: body.len() as u64,
            etag: Some(format!("\"{:x}\"", self.etag_seq.fetch_add(1, Ordering::Relaxed))),
            last_modified: SystemTime::now(),
            metadata: HashMap::new(),
            content_type: None,
            extra: Default::default(),
        };
        self.lock().insert(key.to_string(), Stored { body, meta });
    }

    /// The body stored under `key`, if any.
    pub fn body(&self, key: &str) -> Option<Bytes> {
        self.lock().get(key).map(|s| s.body.clone())
    }

    /// All keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn pending_uploads(&self) -> usize {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// User metadata of `key`, if it exists.
    pub fn metadata(&self, key: &str) -> Option<HashMap<String, String>> {
        self.lock().get(key).map(|s| s.meta.metadata.clone())
    }

    fn next_etag(&self) -> String {
        format!("\"{:x}\"", self.etag_seq.fetch_add(1, Ordering::Relaxed))
    }

    fn store(&self, key: &str, body: Bytes, opts: &PutOptions) -> String {
        let etag = self.next_etag();
        let meta = ObjectMeta {
            key: key.to_string(),
            size: body.len() as u64,
            etag: Some(etag.clone()),
            last_modified: SystemTime::now(),
            metadata: opts.metadata.clone(),
            content_type: opts.content_type.clone(),
            extra: Default::default(),
        };
        self.lock().insert(key.to_string(), Stored { body, meta });
        etag
    }

    fn source(&self, src: &str, if_match: Option<&str>) -> Result<Stored, StoreError> {
        let map = self.lock();
        let stored = map
            .get(src)
            .ok_or_else(|| StoreError::NotFound { key: src.to_string() })?;
        if if_match.is_some_and(|want| stored.meta.etag.as_deref() != Some(want)) {
            return Err(StoreError::PreconditionFailed { key: src.to_string() });
        }
        Ok(stored.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stored>> {
        // A poisoned lock only means a test thread panicked; the map itself is still consistent.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn head_object(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.counts.head.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .get(key)
            .map(|s| s.meta.clone())
            .ok_or_else(|| StoreError::NotFound { key: key.to_string() })
    }

    async fn list_objects(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        let limit = req
            .max_keys
            .map_or(self.max_page, |m| (m.max(1) as usize).min(self.max_page));
        let map = self.lock();
        let mut page = ListPage::default();
        let mut count = 0usize;
        let mut last: Option<String> = None;
        let mut truncated = false;
        // Tokens are "K<key>" after an object and "P<prefix>" after a common prefix.
        let (after, skip_prefix) = match req.continuation.as_deref() {
            Some(t) if t.starts_with('P') => (t[1..].to_string(), true),
            Some(t) => (t.get(1..).unwrap_or_default().to_string(), false),
            None => (String::new(), false),
        };
        let from = if after.as_str() > req.prefix.as_str() {
            after.clone()
        } else {
            req.prefix.clone()
        };
        for (key, stored) in map.range(from..) {
            if !key.starts_with(&req.prefix) {
                break;
            }
            if req.continuation.is_some() && (key.as_str() <= after.as_str() || skip_prefix && key.starts_with(&after))
            {
                continue;
            }
            let rest = &key[req.prefix.len()..];
            let common = req
                .delimiter
                .as_deref()
                .and_then(|d| rest.find(d).map(|i| format!("{}{}", req.prefix, &rest[..i + d.len()])));
            if let Some(cp) = &common {
                if page.prefixes.last() == Some(cp) {
                    continue;
                }
            }
            if count == limit {
                truncated = true;
                break;
            }
            count += 1;
            match common {
                Some(cp) => {
                    last = Some(format!("P{cp}"));
                    page.prefixes.push(cp);
                }
                None => {
                    last = Some(format!("K{key}"));
                    page.objects.push(stored.meta.clone());
                }
            }
        }
        if truncated {
            page.next = last;
        }
        Ok(page)
    }

    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes, StoreError> {
        self.counts.get.fetch_add(1, Ordering::Relaxed);
        let map = self.lock();
        let stored = map
            .get(key)
            .ok_or_else(|| StoreError::NotFound { key: key.to_string() })?;
        if let Some(want) = if_match {
            if stored.meta.etag.as_deref() != Some(want) {
                return Err(StoreError::PreconditionFailed { key: key.to_string() });
            }
        }
        let len = stored.body.len() as u64;
        let start = range.start.min(len) as usize;
        let end = range.end.min(len) as usize;
        Ok(stored.body.slice(start..end.max(start)))
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<Option<String>, StoreError> {
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        Ok(Some(self.store(key, Bytes::copy_from_slice(&body), opts)))
    }

    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        self.lock().remove(key);
        Ok(())
    }

    async fn copy_object(
        &self,
        src: &str,
        dst: &str,
        if_match: Option<&str>,
        replace: Option<&PutOptions>,
    ) -> Result<Option<String>, StoreError> {
        self.counts.copy.fetch_add(1, Ordering::Relaxed);
        let source = self.source(src, if_match)?;
        let opts = replace.cloned().unwrap_or(PutOptions {
            metadata: source.meta.metadata.clone(),
            content_type: source.meta.content_type.clone(),
        });
        Ok(Some(self.store(dst, source.body, &opts)))
    }

    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String, StoreError> {
        self.counts.create_multipart.fetch_add(1, Ordering::Relaxed);
        let id = format!("upload-{}", self.etag_seq.fetch_add(1, Ordering::Relaxed));
        let upload = Upload {
            key: key.to_string(),
            opts: opts.clone(),
            parts: BTreeMap::new(),
        };
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), upload);
        Ok(id)
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: i32, body: Bytes) -> Result<PartTag, StoreError> {
        self.counts.upload_part.fetch_add(1, Ordering::Relaxed);
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let upload = uploads
            .get_mut(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| StoreError::Other {
                op: "UploadPart",
                message: format!("NoSuchUpload {upload_id}"),
            })?;
        // A copy, as a server keeps: the caller's buffer (charged to its memory budget) is free
        // once the request is done.
        upload.parts.insert(part, Bytes::copy_from_slice(&body));
        Ok(PartTag {
            etag: format!("\"part-{part}\""),
            crc32: None,
        })
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
        self.counts.upload_part_copy.fetch_add(1, Ordering::Relaxed);
        let source = self.source(src, if_match)?;
        let end = (range.end as usize).min(source.body.len());
        let start = (range.start as usize).min(end);
        let body = source.body.slice(start..end);
        self.counts.upload_part.fetch_sub(1, Ordering::Relaxed);
        self.upload_part(key, upload_id, part, body).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError> {
        self.counts.complete.fetch_add(1, Ordering::Relaxed);
        let upload = self
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(upload_id)
            .filter(|u| u.key == key)
            .ok_or_else(|| StoreError::Other {
                op: "CompleteMultipartUpload",
                message: format!("NoSuchUpload {upload_id}"),
            })?;
        let mut body = Vec::new();
        for (i, (n, _)) in parts.iter().enumerate() {
            let data = upload.parts.get(n).ok_or_else(|| StoreError::Other {
                op: "CompleteMultipartUpload",
                message: format!("InvalidPart {n}"),
            })?;
            if i + 1 < parts.len() && data.len() < MIN_PART {
                return Err(StoreError::Other {
                    op: "CompleteMultipartUpload",
                    message: format!("EntityTooSmall: part {n}"),
                });
            }
            body.extend_from_slice(data);
        }
        Ok(Some(self.store(key, Bytes::from(body), &upload.opts)))
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.counts.abort.fetch_add(1, Ordering::Relaxed);
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(upload_id);
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory bucket".to_string()
    }
}

#[cfg(test)]
mod tests;
