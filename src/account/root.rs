//! The top directory of an account mount (`--all-buckets`): one folder per bucket the
//! credentials can list. `ls` is ListBuckets (kept for the metadata TTL); `mkdir` creates a
//! bucket, `rmdir` deletes an empty one; nothing else can be made or changed at this level.
//! Each bucket's [`S3Fs`] is opened on first use (its immutability scheme read then) and kept in
//! its slot (see `ids.rs`) until the bucket is deleted through the mount.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use super::ids;
use crate::error::{FsError, FsResult};
use crate::fs::attr::Presentation;
use crate::fs::inode::{Kind, Stat, ROOT_INO};
use crate::fs::{DirOpened, DirPlusReplier, DirReplier, Entry, S3Fs};
use crate::store::buckets::{check_bucket_name, BucketInfo};
use crate::store::{ObjectStore, StoreError};

/// What an account mount needs from the service: its buckets, and a filesystem for one of them.
#[async_trait]
pub trait Buckets<S: ObjectStore>: Send + Sync + 'static {
    /// ListBuckets.
    async fn list(&self) -> Result<Vec<BucketInfo>, StoreError>;
    /// CreateBucket with the mount's location constraint and encryption.
    async fn create(&self, name: &str) -> Result<(), StoreError>;
    /// DeleteBucket (refused by the service while the bucket holds objects).
    async fn delete(&self, name: &str) -> Result<(), StoreError>;
    /// The filesystem of bucket `name`, as a single-bucket mount of it would have.
    async fn open(&self, name: &str) -> FsResult<Arc<S3Fs<S>>>;
}

type Slot<S> = Arc<OnceCell<Arc<S3Fs<S>>>>;

/// The account root.
pub struct AccountRoot<S: ObjectStore> {
    buckets: Box<dyn Buckets<S>>,
    presentation: Presentation,
    ttl: Duration,
    read_only: bool,
    /// `--region`: buckets that IBM's extended listing places in another location are not shown
    /// (requests for them would have to go to another endpoint).
    region: Option<String>,
    mounted_at: SystemTime,
    /// Bucket name → slot, for the life of the mount (a bucket made again gets its old slot).
    slots: Mutex<HashMap<String, u64>>,
    /// Slot → name and its filesystem, once opened.
    open: Mutex<HashMap<u64, (String, Slot<S>)>>,
    /// The last ListBuckets and when it was made.
    listing: Mutex<Option<(Instant, Arc<Vec<BucketInfo>>)>>,
    /// Open handles of the root directory: the listing each one reads.
    dirs: Mutex<HashMap<u64, Arc<Vec<BucketInfo>>>>,
    next_fh: AtomicU64,
    mount_id: std::sync::OnceLock<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn eperm(what: &str) -> FsError {
    FsError::new(
        libc::EPERM,
        format!("{what}: the top of an --all-buckets mount holds only buckets (mkdir creates one, rmdir deletes an empty one)"),
    )
}

impl<S: ObjectStore> AccountRoot<S> {
    /// An account root over `buckets`, showing owners and modes as `presentation`.
    pub fn new(buckets: Box<dyn Buckets<S>>, presentation: Presentation, ttl: Duration, read_only: bool) -> Self {
        Self {
            buckets,
            presentation,
            ttl,
            read_only,
            region: None,
            mounted_at: SystemTime::now(),
            slots: Mutex::new(HashMap::new()),
            open: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mount_id: std::sync::OnceLock::new(),
        }
    }

    /// Show only the buckets that IBM's extended listing places in `region` (`us-south` takes
    /// `us-south-standard`, `us-south-cold`, ...); buckets the listing says nothing of are shown.
    pub fn in_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }

    /// Whether bucket `b` is served through this endpoint.
    fn here(&self, b: &BucketInfo) -> bool {
        match (&self.region, &b.location) {
            (Some(r), Some(l)) => l == r || l.strip_prefix(r.as_str()).is_some_and(|rest| rest.starts_with('-')),
            _ => true,
        }
    }

    /// Start from `listed` (the check before mounting listed the buckets already).
    pub fn listed(self, listed: Vec<BucketInfo>) -> Self {
        let shown = self.shown(listed);
        *lock(&self.listing) = Some((Instant::now(), Arc::new(shown)));
        self
    }

    /// This mount's id in `/proc/self/mountinfo`, handed to every bucket's filesystem.
    pub fn set_mount_id(&self, id: u64) {
        let _ = self.mount_id.set(id);
        for (_, cell) in lock(&self.open).values() {
            if let Some(fs) = cell.get() {
                fs.set_mount_id(id);
            }
        }
    }

    fn slot_of(&self, name: &str) -> u64 {
        let mut slots = lock(&self.slots);
        let next = slots.len() as u64 + 1;
        *slots.entry(name.to_string()).or_insert(next)
    }

    fn name_of(&self, slot: u64) -> Option<String> {
        lock(&self.slots)
            .iter()
            .find(|(_, s)| **s == slot)
            .map(|(n, _)| n.clone())
    }

    /// The buckets, listed again once the TTL has passed (or always, with `fresh`).
    async fn list(&self, fresh: bool) -> FsResult<Arc<Vec<BucketInfo>>> {
        if !fresh {
            if let Some((at, l)) = lock(&self.listing).as_ref() {
                if at.elapsed() < self.ttl {
                    return Ok(l.clone());
                }
            }
        }
        let at = Instant::now();
        let list = Arc::new(self.shown(self.buckets.list().await?));
        *lock(&self.listing) = Some((at, list.clone()));
        Ok(list)
    }

    /// The buckets of `all` served through this endpoint; the others are named in the log.
    fn shown(&self, all: Vec<BucketInfo>) -> Vec<BucketInfo> {
        let (here, elsewhere): (Vec<BucketInfo>, Vec<BucketInfo>) = all.into_iter().partition(|b| self.here(b));
        if !elsewhere.is_empty() {
            let names: Vec<String> = elsewhere
                .iter()
                .map(|b| format!("{} ({})", b.name, b.location.as_deref().unwrap_or("?")))
                .collect();
            info!(
                "{} bucket(s) in other locations are not shown (mount with their --region to see them): {}",
                names.len(),
                names.join(", ")
            );
        }
        here
    }

    /// The bucket `name`, from a listing younger than the TTL, else from a new one (so a bucket
    /// made elsewhere shows at once; the kernel remembers a missing name for the TTL).
    async fn find(&self, name: &str) -> FsResult<BucketInfo> {
        for fresh in [false, true] {
            if let Some(b) = self.list(fresh).await?.iter().find(|b| b.name == name) {
                return Ok(b.clone());
            }
        }
        Err(FsError::quiet(
            libc::ENOENT,
            format!("no bucket {name:?} in this account"),
        ))
    }

    fn bucket_entry(&self, b: &BucketInfo) -> Entry {
        let slot = self.slot_of(&b.name);
        let stat = Stat::dir(b.created.unwrap_or(self.mounted_at));
        Entry {
            attr: self.presentation.attr(ids::global(slot, ROOT_INO), &stat),
            ttl: self.ttl,
        }
    }

    /// The filesystem of bucket `slot`, opened on first use.
    pub async fn fs(&self, slot: u64) -> FsResult<Arc<S3Fs<S>>> {
        let (name, cell) = {
            let mut open = lock(&self.open);
            match open.get(&slot) {
                Some((n, c)) => (n.clone(), c.clone()),
                None => {
                    let name = self
                        .name_of(slot)
                        .ok_or_else(|| FsError::new(libc::ESTALE, format!("no bucket has slot {slot}")))?;
                    let cell: Slot<S> = Arc::new(OnceCell::new());
                    open.insert(slot, (name.clone(), cell.clone()));
                    (name, cell)
                }
            }
        };
        let fs = cell
            .get_or_try_init(|| async {
                let fs = self.buckets.open(&name).await?;
                fs.set_kernel_ino_base(ids::base(slot));
                if let Some(id) = self.mount_id.get() {
                    fs.set_mount_id(*id);
                }
                info!(bucket = name.as_str(), "bucket opened");
                Ok::<_, FsError>(fs)
            })
            .await?;
        Ok(fs.clone())
    }

    /// Run `f` on every bucket's filesystem that is open.
    pub fn each_open(&self, f: impl Fn(&S3Fs<S>)) {
        for fs in self.open_buckets() {
            f(&fs);
        }
    }

    /// The buckets opened so far.
    pub fn open_buckets(&self) -> Vec<Arc<S3Fs<S>>> {
        lock(&self.open)
            .values()
            .filter_map(|(_, c)| c.get().cloned())
            .collect()
    }

    /// The filesystem of bucket `slot` if it is open (handles only come from open ones).
    pub fn fs_if_open(&self, slot: u64) -> Option<Arc<S3Fs<S>>> {
        lock(&self.open).get(&slot).and_then(|(_, c)| c.get().cloned())
    }

    /// The bucket name of `slot`, for messages.
    pub fn bucket_name(&self, slot: u64) -> Option<String> {
        self.name_of(slot)
    }

    /// getattr of the root.
    pub fn root_entry(&self) -> Entry {
        Entry {
            attr: self.presentation.attr(ROOT_INO, &Stat::dir(self.mounted_at)),
            ttl: self.ttl,
        }
    }

    /// getattr of a bucket's folder.
    pub async fn bucket_attr(&self, slot: u64) -> FsResult<Entry> {
        let name = self
            .name_of(slot)
            .ok_or_else(|| FsError::new(libc::ESTALE, format!("no bucket has slot {slot}")))?;
        Ok(self.bucket_entry(&self.find(&name).await?))
    }

    fn name<'a>(&self, name: &'a OsStr) -> FsResult<&'a str> {
        name.to_str()
            .ok_or_else(|| FsError::quiet(libc::ENOENT, "bucket names are ASCII"))
    }

    /// lookup of a bucket.
    pub async fn lookup(&self, name: &OsStr) -> FsResult<Entry> {
        let name = self.name(name)?;
        if check_bucket_name(name).is_err() {
            return Err(FsError::quiet(
                libc::ENOENT,
                format!("{name:?} cannot be a bucket name"),
            ));
        }
        Ok(self.bucket_entry(&self.find(name).await?))
    }

    /// mkdir: CreateBucket.
    pub async fn mkdir(&self, name: &OsStr) -> FsResult<Entry> {
        if self.read_only {
            return Err(FsError::quiet(libc::EROFS, "the mount is read-only"));
        }
        let name = name
            .to_str()
            .ok_or_else(|| FsError::new(libc::EINVAL, "bucket names are ASCII"))?;
        check_bucket_name(name).map_err(|why| FsError::new(libc::EINVAL, why))?;
        // Listed afresh: some servers (moto, AWS in us-east-1) answer a CreateBucket of a bucket
        // the account already owns with success.
        if self.list(true).await?.iter().any(|b| b.name == name) {
            return Err(FsError::quiet(libc::EEXIST, format!("bucket {name:?} exists")));
        }
        self.buckets.create(name).await?;
        info!(bucket = name, "bucket created");
        *lock(&self.listing) = None;
        let created = BucketInfo {
            name: name.to_string(),
            created: Some(SystemTime::now()),
            location: None,
        };
        Ok(self
            .find(name)
            .await
            .map_or_else(|_| self.bucket_entry(&created), |b| self.bucket_entry(&b)))
    }

    /// rmdir: DeleteBucket of an empty bucket.
    pub async fn rmdir(&self, name: &OsStr) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::quiet(libc::EROFS, "the mount is read-only"));
        }
        let name = self.name(name)?;
        self.find(name).await?;
        self.buckets.delete(name).await?;
        info!(bucket = name, "bucket deleted");
        *lock(&self.listing) = None;
        let slot = self.slot_of(name);
        lock(&self.open).remove(&slot);
        Ok(())
    }

    /// unlink, create, mknod, symlink at the root.
    pub async fn not_a_bucket(&self, op: &str, name: &OsStr) -> FsError {
        if let Ok(n) = self.name(name) {
            if op == "unlink" && self.find(n).await.is_ok() {
                return FsError::quiet(libc::EISDIR, format!("{n:?} is a bucket: rmdir deletes it when empty"));
            }
        }
        eperm(op)
    }

    /// Any other change at the root (setattr, rename, xattrs).
    pub fn refused(&self, op: &str) -> FsError {
        eperm(op)
    }

    /// opendir of the root: a snapshot of the bucket list for this handle.
    pub async fn opendir(&self) -> FsResult<DirOpened> {
        let list = match self.list(false).await {
            Ok(l) => l,
            Err(e) => {
                warn!("listing the account's buckets failed: {}", e.message);
                return Err(e);
            }
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, list);
        Ok(DirOpened { fh, keep_cache: false })
    }

    fn dir(&self, fh: u64) -> FsResult<Arc<Vec<BucketInfo>>> {
        lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(libc::EBADF, format!("directory handle {fh} is not open")))
    }

    /// readdir of the root: `.`, `..`, then the buckets; an entry's offset is its position + 1.
    pub fn readdir(&self, fh: u64, offset: u64, out: &mut dyn DirReplier) -> FsResult<()> {
        let list = self.dir(fh)?;
        for pos in offset as usize.. {
            let next = pos as u64 + 1;
            let full = match pos {
                0 => out.add(ROOT_INO, next, Kind::Dir, "."),
                1 => out.add(ROOT_INO, next, Kind::Dir, ".."),
                k => match list.get(k - 2) {
                    Some(b) => out.add(ids::global(self.slot_of(&b.name), ROOT_INO), next, Kind::Dir, &b.name),
                    None => break,
                },
            };
            if full {
                break;
            }
        }
        Ok(())
    }

    /// readdirplus of the root: the same, with each bucket's attributes.
    pub fn readdirplus(&self, fh: u64, offset: u64, out: &mut dyn DirPlusReplier) -> FsResult<()> {
        let list = self.dir(fh)?;
        let root = self.root_entry();
        for pos in offset as usize.. {
            let next = pos as u64 + 1;
            let full = match pos {
                0 => out.add(next, ".", &root),
                1 => out.add(next, "..", &root),
                k => match list.get(k - 2) {
                    Some(b) => out.add(next, &b.name, &self.bucket_entry(b)),
                    None => break,
                },
            };
            if full {
                break;
            }
        }
        Ok(())
    }

    /// releasedir of the root.
    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}
