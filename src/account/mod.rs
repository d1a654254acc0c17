//! [`Mount`]: what the FUSE adapter serves, either one bucket (every call goes straight to its
//! [`S3Fs`]) or a whole account (`--all-buckets`): the [`AccountRoot`] on top, each bucket's own
//! `S3Fs` below it, exactly as a single-bucket mount of that bucket would be.
//!
//! - `mod.rs` (here): each operation routed by its inode or handle number, with the numbers of
//!   a bucket's answers renumbered for the kernel;
//! - `ids.rs`: that numbering (the bucket's slot in the high bits);
//! - `root.rs`: the account root (ListBuckets, mkdir = CreateBucket, rmdir = DeleteBucket);
//! - `s3.rs`: opening a bucket over S3, shared with the single-bucket mount.
//!
//! Across buckets, `rename` is `EXDEV` (so `mv` copies and deletes) and nothing at the root but
//! buckets can be made or changed (`EPERM`).

pub mod ids;
mod root;
pub mod s3;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

pub use root::{AccountRoot, Buckets};

use crate::error::{FsError, FsResult};
use crate::fs::inode::ROOT_INO;
use crate::fs::{DirOpened, DirPlusReplier, DirReplier, Entry, S3Fs, SetAttr, StatFs, WalkJob};
use crate::store::ObjectStore;
use ids::{entry, global, split, SlotDir, SlotDirPlus};

/// One bucket, or all of them.
pub enum Mount<S: ObjectStore> {
    /// A single-bucket mount: numbers unchanged.
    Bucket(Arc<S3Fs<S>>),
    /// An account mount.
    Account(Arc<AccountRoot<S>>),
}

/// Where a call goes.
enum To<S: ObjectStore> {
    /// A bucket's filesystem, with the number in its own terms and its slot.
    Fs(Arc<S3Fs<S>>, u64, u64),
    /// The account root.
    Root(Arc<AccountRoot<S>>),
}

impl<S: ObjectStore> Mount<S> {
    /// Route an inode number (a bucket is opened on first use).
    async fn to(&self, ino: u64) -> FsResult<To<S>> {
        match self {
            Mount::Bucket(fs) => Ok(To::Fs(fs.clone(), ino, 0)),
            Mount::Account(root) => match split(ino) {
                (0, _) => Ok(To::Root(root.clone())),
                (slot, local) => Ok(To::Fs(root.fs(slot).await?, local, slot)),
            },
        }
    }

    /// Route a handle number: `None` for the root's directory handles.
    fn fh(&self, fh: u64) -> FsResult<Option<(Arc<S3Fs<S>>, u64)>> {
        match self {
            Mount::Bucket(fs) => Ok(Some((fs.clone(), fh))),
            Mount::Account(root) => match split(fh) {
                (0, _) => Ok(None),
                (slot, local) => root
                    .fs_if_open(slot)
                    .map(|fs| Some((fs, local)))
                    .ok_or_else(|| FsError::new(libc::EBADF, format!("handle {fh} belongs to no open bucket"))),
            },
        }
    }

    fn file(&self, fh: u64) -> FsResult<(Arc<S3Fs<S>>, u64)> {
        self.fh(fh)?
            .ok_or_else(|| FsError::new(libc::EISDIR, "the account root is a directory"))
    }

    /// How long the kernel may remember that a name does not exist.
    pub fn negative_ttl(&self) -> Duration {
        match self {
            Mount::Bucket(fs) => fs.negative_ttl(),
            Mount::Account(root) => root.root_entry().ttl,
        }
    }

    /// The mount's id in `/proc/self/mountinfo` (see `fs/closing.rs`).
    pub fn set_mount_id(&self, id: u64) {
        match self {
            Mount::Bucket(fs) => fs.set_mount_id(id),
            Mount::Account(root) => root.set_mount_id(id),
        }
    }

    /// Write out what the buckets' metadata caches on disk have buffered (at unmount).
    pub fn flush_caches(&self) {
        match self {
            Mount::Bucket(fs) => fs.flush_metadata(),
            Mount::Account(root) => root.each_open(|fs| fs.flush_metadata()),
        }
    }

    /// The S3 key (with its bucket, in an account mount) of an inode or a child, for log lines.
    pub fn key_of(&self, ino: u64, name: Option<&OsStr>) -> Option<String> {
        match self {
            Mount::Bucket(fs) => fs.key_of(ino, name),
            Mount::Account(root) => match split(ino) {
                (0, _) => Some(name.map_or_else(String::new, |n| n.to_string_lossy().into_owned())),
                (slot, local) => {
                    let key = root.fs_if_open(slot)?.key_of(local, name)?;
                    Some(format!("{}/{key}", root.bucket_name(slot)?))
                }
            },
        }
    }

    pub async fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<Entry> {
        match self.to(parent).await? {
            To::Fs(fs, p, slot) => fs.lookup(p, name).await.map(|e| entry(slot, e)),
            To::Root(root) => root.lookup(name).await,
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        match self {
            Mount::Bucket(fs) => fs.forget(ino, n),
            Mount::Account(root) => {
                if let (slot @ 1.., local) = split(ino) {
                    if let Some(fs) = root.fs_if_open(slot) {
                        fs.forget(local, n);
                    }
                }
            }
        }
    }

    pub async fn getattr(&self, ino: u64) -> FsResult<Entry> {
        if let (Mount::Account(root), (slot @ 1.., ROOT_INO)) = (self, split(ino)) {
            // A bucket's folder: from the account listing, without opening the bucket.
            return root.bucket_attr(slot).await;
        }
        match self.to(ino).await? {
            To::Fs(fs, i, slot) => fs.getattr(i).await.map(|e| entry(slot, e)),
            To::Root(root) => Ok(root.root_entry()),
        }
    }

    pub async fn setattr(&self, ino: u64, fh: Option<u64>, set: SetAttr) -> FsResult<Entry> {
        match self.to(ino).await? {
            To::Fs(fs, i, slot) => {
                let fh = match fh {
                    Some(f) => self.fh(f)?.map(|(_, f)| f),
                    None => None,
                };
                fs.setattr(i, fh, set).await.map(|e| entry(slot, e))
            }
            To::Root(root) => Err(root.refused("setattr")),
        }
    }

    pub async fn readlink(&self, ino: u64) -> FsResult<Bytes> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.readlink(i).await,
            To::Root(_) => Err(FsError::quiet(libc::EINVAL, "the account root is not a symbolic link")),
        }
    }

    pub async fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, uid: u32, gid: u32) -> FsResult<Entry> {
        match self.to(parent).await? {
            To::Fs(fs, p, slot) => fs.mkdir(p, name, mode, uid, gid).await.map(|e| entry(slot, e)),
            To::Root(root) => root.mkdir(name).await,
        }
    }

    pub async fn unlink(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        match self.to(parent).await? {
            To::Fs(fs, p, _) => fs.unlink(p, name).await,
            To::Root(root) => Err(root.not_a_bucket("unlink", name).await),
        }
    }

    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        match self.to(parent).await? {
            To::Fs(fs, p, _) => fs.rmdir(p, name).await,
            To::Root(root) => root.rmdir(name).await,
        }
    }

    pub async fn mknod(&self, parent: u64, name: &OsStr, mode: u32, rdev: u32, uid: u32, gid: u32) -> FsResult<Entry> {
        match self.to(parent).await? {
            To::Fs(fs, p, slot) => fs.mknod(p, name, mode, rdev, uid, gid).await.map(|e| entry(slot, e)),
            To::Root(root) => Err(root.not_a_bucket("mknod", name).await),
        }
    }

    pub async fn symlink(&self, parent: u64, name: &OsStr, target: &Path, uid: u32, gid: u32) -> FsResult<Entry> {
        match self.to(parent).await? {
            To::Fs(fs, p, slot) => fs.symlink(p, name, target, uid, gid).await.map(|e| entry(slot, e)),
            To::Root(root) => Err(root.not_a_bucket("symlink", name).await),
        }
    }

    pub async fn rename(&self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32) -> FsResult<()> {
        match (self.to(parent).await?, self.to(newparent).await?) {
            (To::Fs(fs, p, a), To::Fs(_, np, b)) if a == b => fs.rename(p, name, np, newname, flags).await,
            (To::Fs(..), To::Fs(..)) => Err(FsError::quiet(
                libc::EXDEV,
                "a rename between buckets is a copy: mv copies and deletes",
            )),
            (To::Root(root), _) | (_, To::Root(root)) => Err(root.refused("rename (buckets cannot be renamed)")),
        }
    }

    pub async fn link(&self, ino: u64) -> FsResult<Entry> {
        match self.to(ino).await? {
            To::Fs(fs, _, _) => fs.link(),
            To::Root(root) => Err(root.refused("link")),
        }
    }

    pub async fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
        pid: u32,
    ) -> FsResult<(Entry, u64)> {
        match self.to(parent).await? {
            To::Fs(fs, p, slot) => {
                let (e, fh) = fs.create(p, name, mode, uid, gid, pid).await?;
                Ok((entry(slot, e), global(slot, fh)))
            }
            To::Root(root) => Err(root.not_a_bucket("create", name).await),
        }
    }

    pub async fn open(&self, ino: u64, flags: i32, pid: u32) -> FsResult<u64> {
        match self.to(ino).await? {
            To::Fs(fs, i, slot) => fs.open(i, flags, pid).await.map(|fh| global(slot, fh)),
            To::Root(_) => Err(FsError::quiet(libc::EISDIR, "the account root is a directory")),
        }
    }

    pub fn keep_cache(&self, fh: u64) -> bool {
        self.file(fh).is_ok_and(|(fs, f)| fs.keep_cache(f))
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let (fs, f) = self.file(fh)?;
        fs.read(f, offset, size).await
    }

    pub async fn write_as(&self, fh: u64, offset: u64, data: &[u8], privileged: bool) -> FsResult<u32> {
        let (fs, f) = self.file(fh)?;
        fs.write_as(f, offset, data, privileged).await
    }

    pub async fn flush(&self, fh: u64, pid: u32) -> FsResult<()> {
        let (fs, f) = self.file(fh)?;
        fs.flush(f, pid).await
    }

    /// fsyncdir (`sync DIR`): upload the files under it that wait in the write cache (every
    /// open bucket's, at the account root).
    pub async fn fsyncdir(&self, ino: u64) -> FsResult<()> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.fsyncdir(i).await,
            To::Root(root) => {
                for fs in root.open_buckets() {
                    fs.fsyncdir(ROOT_INO).await?;
                }
                Ok(())
            }
        }
    }

    /// After unmount: wait for the write caches to empty (see `S3Fs::drain`); the files left.
    pub async fn drain(&self) -> u64 {
        match self {
            Mount::Bucket(fs) => fs.drain().await,
            Mount::Account(root) => {
                let mut left = 0;
                for fs in root.open_buckets() {
                    left += fs.drain().await;
                }
                left
            }
        }
    }

    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let (fs, f) = self.file(fh)?;
        fs.fsync(f).await
    }

    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let (fs, f) = self.file(fh)?;
        fs.release(f).await
    }

    pub async fn opendir(&self, ino: u64) -> FsResult<DirOpened> {
        match self.to(ino).await? {
            To::Fs(fs, i, slot) => {
                let mut d = fs.opendir(i).await?;
                d.fh = global(slot, d.fh);
                Ok(d)
            }
            To::Root(root) => root.opendir().await,
        }
    }

    /// The listings to run ahead of a tree walk from `ino`, and the filesystem to run them on.
    pub fn walk_ahead(&self, ino: u64) -> Option<(Arc<S3Fs<S>>, Vec<WalkJob>)> {
        let (fs, local) = match self {
            Mount::Bucket(fs) => (fs.clone(), ino),
            Mount::Account(root) => match split(ino) {
                (0, _) => return None,
                (slot, local) => (root.fs_if_open(slot)?, local),
            },
        };
        let jobs = fs.walk_ahead(local);
        (!jobs.is_empty()).then_some((fs, jobs))
    }

    pub async fn readdir(&self, fh: u64, offset: u64, out: &mut dyn DirReplier) -> FsResult<()> {
        match (self, self.fh(fh)?) {
            (Mount::Bucket(fs), _) => fs.readdir(fh, offset, out).await,
            (Mount::Account(_), Some((fs, f))) => {
                let slot = split(fh).0;
                fs.readdir(f, offset, &mut SlotDir { out, slot }).await
            }
            (Mount::Account(root), None) => root.readdir(fh, offset, out),
        }
    }

    pub async fn readdirplus(&self, fh: u64, offset: u64, out: &mut dyn DirPlusReplier) -> FsResult<()> {
        match (self, self.fh(fh)?) {
            (Mount::Bucket(fs), _) => fs.readdirplus(fh, offset, out).await,
            (Mount::Account(_), Some((fs, f))) => {
                let slot = split(fh).0;
                fs.readdirplus(f, offset, &mut SlotDirPlus { out, slot }).await
            }
            (Mount::Account(root), None) => root.readdirplus(fh, offset, out),
        }
    }

    pub fn releasedir(&self, fh: u64) {
        match (self, self.fh(fh)) {
            (Mount::Account(root), Ok(None)) => root.releasedir(fh),
            (_, Ok(Some((fs, f)))) => fs.releasedir(f),
            _ => {}
        }
    }

    pub fn statfs(&self) -> StatFs {
        StatFs::unlimited()
    }

    pub async fn getxattr(&self, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.getxattr(i, name).await,
            To::Root(_) => Err(FsError::quiet(
                libc::ENODATA,
                format!(
                    "{}: the account root has no attributes (a bucket's are on its folder)",
                    name.to_string_lossy()
                ),
            )),
        }
    }

    pub async fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.listxattr(i).await,
            To::Root(_) => Ok(Vec::new()),
        }
    }

    pub async fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> FsResult<()> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.setxattr(i, name, value, flags).await,
            To::Root(root) => Err(root.refused("setxattr (a bucket's attributes are on its folder)")),
        }
    }

    pub async fn removexattr(&self, ino: u64, name: &OsStr) -> FsResult<()> {
        match self.to(ino).await? {
            To::Fs(fs, i, _) => fs.removexattr(i, name).await,
            To::Root(root) => Err(root.refused("removexattr")),
        }
    }
}
