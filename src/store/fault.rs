//! `FaultStore`: wraps any [`ObjectStore`] and fails (or slows) chosen operations, for tests that
//! prove errors reach the caller, nothing partial is left behind, and races come out right.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ListPage, ListRequest, ObjectMeta, ObjectStore, PartTag, PutOptions, StoreError};

#[derive(Debug, Clone, Copy)]
struct Rule {
    skip: usize,
    times: usize,
    /// Fail with AccessDenied (a refusal) rather than as unreachable (a failure that passes).
    denied: bool,
}

/// A store that fails operations on request.
#[derive(Debug)]
pub struct FaultStore<S> {
    inner: S,
    rules: Mutex<HashMap<&'static str, Rule>>,
    /// PutObject calls take this long (a slow upload, to hold a race open).
    put_delay: Mutex<std::time::Duration>,
}

impl<S: ObjectStore> FaultStore<S> {
    /// Wrap `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: Mutex::new(HashMap::new()),
            put_delay: Mutex::new(std::time::Duration::ZERO),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Let `skip` calls of `op` (an S3 operation name, e.g. "UploadPart") through, then fail `times`.
    pub fn fail(&self, op: &'static str, skip: usize, times: usize) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).insert(
            op,
            Rule {
                skip,
                times,
                denied: false,
            },
        );
    }

    /// Refuse every call of `op` with AccessDenied from now on.
    pub fn deny(&self, op: &'static str) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).insert(
            op,
            Rule {
                skip: 0,
                times: usize::MAX,
                denied: true,
            },
        );
    }

    /// Make every PutObject take `d` before it is stored.
    pub fn delay_puts(&self, d: std::time::Duration) {
        *self.put_delay.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Stop failing.
    pub fn heal(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let Some(rule) = rules.get_mut(op) else { return Ok(()) };
        if rule.skip > 0 {
            rule.skip -= 1;
            return Ok(());
        }
        if rule.times == 0 {
            return Ok(());
        }
        rule.times -= 1;
        if rule.denied {
            return Err(StoreError::AccessDenied {
                endpoint: "fault-injection".into(),
                message: format!("injected refusal of {op}"),
            });
        }
        Err(StoreError::Unreachable {
            endpoint: "fault-injection".into(),
            message: format!("injected failure of {op}"),
        })
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultStore<S> {
    async fn head_object(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.check("HeadObject")?;
        self.inner.head_object(key).await
    }
    async fn list_objects(&self, req: &ListRequest) -> Result<ListPage, StoreError> {
        self.check("ListObjectsV2")?;
        self.inner.list_objects(req).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>, if_match: Option<&str>) -> Result<Bytes, StoreError> {
        self.check("GetObject")?;
        self.inner.get_range(key, range, if_match).await
    }
    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<Option<String>, StoreError> {
        self.check("PutObject")?;
        let delay = *self.put_delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.inner.put_object(key, body, opts).await
    }
    async fn delete_object(&self, key: &str) -> Result<(), StoreError> {
        self.check("DeleteObject")?;
        self.inner.delete_object(key).await
    }
    async fn copy_object(
        &self,
        src: &str,
        dst: &str,
        if_match: Option<&str>,
        replace: Option<&PutOptions>,
    ) -> Result<Option<String>, StoreError> {
        self.check("CopyObject")?;
        self.inner.copy_object(src, dst, if_match, replace).await
    }
    async fn create_multipart(&self, key: &str, opts: &PutOptions) -> Result<String, StoreError> {
        self.check("CreateMultipartUpload")?;
        self.inner.create_multipart(key, opts).await
    }
    async fn upload_part(&self, key: &str, upload_id: &str, part: i32, body: Bytes) -> Result<PartTag, StoreError> {
        self.check("UploadPart")?;
        self.inner.upload_part(key, upload_id, part, body).await
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
        self.check("UploadPartCopy")?;
        self.inner
            .upload_part_copy(key, upload_id, part, src, range, if_match)
            .await
    }
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, PartTag)>,
    ) -> Result<Option<String>, StoreError> {
        self.check("CompleteMultipartUpload")?;
        self.inner.complete_multipart(key, upload_id, parts).await
    }
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.check("AbortMultipartUpload")?;
        self.inner.abort_multipart(key, upload_id).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}
