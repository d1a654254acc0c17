//! Opening a bucket over S3 the way a mount does (its immutability scheme, the retention headers
//! of the mount options, the multipart journal, the disk cache), for the single-bucket mount and
//! for each bucket of an account mount; and [`S3Buckets`], the account's buckets over S3.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{info, warn};

use super::Buckets;
use crate::budget::Budget;
use crate::config::MountConfig;
use crate::error::{FsError, FsResult};
use crate::fs::blocks::DiskCache;
use crate::fs::write_cache::WriteCache;
use crate::fs::S3Fs;
use crate::store::buckets::{BucketInfo, NewBucket};
use crate::store::s3::S3Store;
use crate::store::worm::Worm;
use crate::store::{ObjectStore, StoreError};

/// The filesystem of `store`'s bucket: its immutability scheme read, checked against the
/// mount's retention options, its multipart journal opened (uploads an earlier mount left open
/// are aborted), with the disk cache in `disk_dir` (a directory of its own for each bucket).
pub async fn open_bucket(
    store: S3Store,
    config: &MountConfig,
    budget: Arc<Budget>,
    disk_dir: Option<std::path::PathBuf>,
) -> Result<Arc<S3Fs<S3Store>>, String> {
    let bucket = store.bucket().to_string();
    let worm = store.bucket_worm().await.unwrap_or_default();
    info!(bucket = bucket.as_str(), ?worm, "bucket immutability");
    check_worm_options(config, &bucket, &worm)?;
    let store = store.with_upload_worm(config.upload_worm.clone());
    let store = match crate::store::journal::Journal::open(&config.state_dir, &store.describe(), &bucket) {
        Ok(j) => store.with_journal(j).await,
        Err(e) => {
            warn!(
                "no multipart journal in {} ({e}): uploads cut off by a crash will not be cleaned up",
                config.state_dir.display()
            );
            store
        }
    };
    let endpoint = store.describe();
    let mut fs_config = config.fs.clone();
    fs_config.worm = worm;
    let disk = match (disk_dir, &config.disk_cache) {
        (Some(dir), Some((_, cap))) => {
            Some(DiskCache::create(&dir, *cap).map_err(|e| format!("cannot use --cache-dir {}: {e}", dir.display()))?)
        }
        _ => None,
    };
    let fs = Arc::new(S3Fs::with_budget(Arc::new(store), fs_config, disk, budget));
    match fs.keep_metadata_in(&config.state_dir, &endpoint, &bucket) {
        Ok(n) => info!(bucket = bucket.as_str(), objects = n, "metadata cache on disk"),
        Err(e) => warn!(
            "no metadata cache in {} ({e}): each mount HEADs objects again for ls -l",
            config.state_dir.display()
        ),
    }
    if let Some(wc) = &config.write_cache {
        let (cache, leftovers) = WriteCache::open(wc.clone(), &endpoint, &bucket)
            .map_err(|e| format!("cannot use --write-cache {}: {e}", wc.dir.display()))?;
        info!(
            bucket = bucket.as_str(),
            dir = %cache.dir().display(),
            left = leftovers.len(),
            "write cache"
        );
        fs.attach_write_cache(cache, leftovers);
    }
    Ok(fs)
}

/// Retention options must match the bucket's scheme.
pub fn check_worm_options(config: &MountConfig, bucket: &str, worm: &Worm) -> Result<(), String> {
    let w = &config.upload_worm;
    if (w.cos_period.is_some() || w.cos_hold_id.is_some()) && !matches!(worm, Worm::CosRetention { .. }) {
        return Err(format!(
            "--retention-period and --legal-hold-id need an IBM COS bucket with a retention policy; {bucket:?} has none"
        ));
    }
    if w.lock_mode.is_some() && !matches!(worm, Worm::ObjectLock { .. }) {
        return Err(format!(
            "--object-lock-mode needs a bucket with Object Lock enabled; {bucket:?} has none"
        ));
    }
    Ok(())
}

/// The buckets of an account over S3.
pub struct S3Buckets {
    /// The connection (its bucket unused): each bucket's store is made from it.
    pub base: S3Store,
    pub config: MountConfig,
    pub new_bucket: NewBucket,
    /// `--max-memory`, shared by every bucket.
    pub budget: Arc<Budget>,
}

#[async_trait]
impl Buckets<S3Store> for S3Buckets {
    async fn list(&self) -> Result<Vec<BucketInfo>, StoreError> {
        self.base.list_buckets().await
    }

    async fn create(&self, name: &str) -> Result<(), StoreError> {
        self.base.create_bucket(name, &self.new_bucket).await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.base.delete_bucket(name).await
    }

    async fn open(&self, name: &str) -> FsResult<Arc<S3Fs<S3Store>>> {
        let disk_dir = self.config.disk_cache.as_ref().map(|(dir, _)| dir.join(name));
        open_bucket(self.base.for_bucket(name), &self.config, self.budget.clone(), disk_dir)
            .await
            .map_err(|why| FsError::new(libc::EIO, format!("cannot open bucket {name:?}: {why}")))
    }
}
