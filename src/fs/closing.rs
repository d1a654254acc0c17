//! What a `close` stores, and what happens when a change could not be stored after the last one:
//! `flush`, `fsync`, `release` and the upload of an open file.
//!
//! **Which close uploads.** Every `close(2)` of a descriptor is a FUSE FLUSH, but only some are
//! the writer's last word. A shell redirect (`cmd > file`) opens the file, `dup2`s it onto
//! standard output and closes the original descriptor *before* `cmd` writes: uploading at that
//! close would store an empty object first (on a retention bucket, an empty object locked for the
//! retention period, after which the real contents are refused). So a flush uploads only when:
//! - the file has changes not yet stored;
//! - the closing process is the one that opened the handle (a forked child dropping inherited
//!   descriptors does not upload a file its parent is still writing);
//! - and the closing process holds no other descriptor open for writing on the same file
//!   ([`still_writing`], read from `/proc/PID/fdinfo`: the same inode on this mount). With a
//!   descriptor left, its close is the one that uploads.
//!
//! When `/proc` cannot tell (the writer is in another PID namespace, or the kernel shows no
//! inode in fdinfo), a flush uploads only changes made by writes or attribute changes since the
//! last upload: a file that is new or truncated by `open` and not written since is stored at the
//! last release instead, so a redirect still never stores an empty intermediate version.
//!
//! **Changes that could not be stored after the last close** (an upload that only the last
//! release attempts, or one that failed at `close` and is then discarded): the writer was gone
//! and shells ignore errors at close, so [`Unstored`](super::unstored::Unstored) keeps a trace a person will find: an ERROR
//! line naming the file, the `cosmount_files_not_stored_total` metric, and an `EIO` from every
//! `fsync` of that path (`sync FILE`) until a new version is stored there or the file is deleted.

use std::time::{Instant, SystemTime};

use tracing::{error, info};

use super::files::OpenFile;
use super::inode::{Kind, Stat};
use super::meta::Posix;
use super::{lock, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;

/// Whether process `pid` holds a descriptor open for writing on inode `ino` of the mount with
/// id `mnt_id` (as `/proc/PID/fdinfo` shows it). `None`: cannot tell.
pub fn still_writing(pid: u32, mnt_id: u64, ino: u64) -> Option<bool> {
    if pid == 0 {
        return None;
    }
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).ok()?;
    for (n, entry) in dir.enumerate() {
        if n > 65_536 {
            return None;
        }
        let Ok(entry) = entry else { continue };
        // A descriptor closed since the listing is simply gone.
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let info = FdInfo::parse(&text)?;
        if info.mnt_id == mnt_id && info.ino == ino && info.flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32 {
            return Some(true);
        }
    }
    Some(false)
}

/// The fields of one `/proc/PID/fdinfo/FD` that matter here.
#[derive(Debug, PartialEq, Eq)]
struct FdInfo {
    flags: u32,
    mnt_id: u64,
    ino: u64,
}

impl FdInfo {
    /// `None` when a field is missing (kernels before 5.14 show no `ino`).
    fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        Some(Self {
            flags: u32::from_str_radix(field("flags")?, 8).ok()?,
            mnt_id: field("mnt_id")?.parse().ok()?,
            ino: field("ino")?.parse().ok()?,
        })
    }
}

impl<S: ObjectStore> S3Fs<S> {
    /// This mount's id in `/proc/self/mountinfo`, known once it is mounted.
    pub fn set_mount_id(&self, id: u64) {
        let _ = self.mount_id.set(id);
    }

    /// The kernel sees this filesystem's inode `n` as `base | n` (an account mount's bucket).
    pub fn set_kernel_ino_base(&self, base: u64) {
        let _ = self.kernel_ino_base.set(base);
    }

    /// flush (each `close`): store a dirty file when this is the writer's last close (see
    /// `closing.rs`); the upload's error is the caller's. A close by another process than the
    /// opener (a forked child dropping inherited descriptors at `exec`) or by one that still holds
    /// another descriptor for writing on the file uploads nothing: that descriptor's close, or
    /// the last release, will.
    pub async fn flush(&self, fh: u64, pid: u32) -> FsResult<()> {
        let h = self.handle(fh)?;
        if !h.writable {
            return Ok(());
        }
        if h.pid != 0 && pid != 0 && pid != h.pid {
            return Ok(());
        }
        let Some(of) = self.open_file(h.ino) else {
            return self.unstored_error(h.ino);
        };
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        if !g.staged.dirty || g.unlinked {
            // Nothing to store: no need to ask /proc whether this is the last close.
            drop(g);
            return self.unstored_error(h.ino);
        }
        let kernel_ino = self.kernel_ino_base.get().copied().unwrap_or(0) | h.ino;
        let still_writing = self.mount_id.get().and_then(|&mnt| still_writing(pid, mnt, kernel_ino));
        if still_writing == Some(true) {
            tracing::debug!(
                ino = h.ino,
                pid,
                "close of one of several descriptors: stored at the last one"
            );
            return Ok(());
        }
        // Not knowing whether more closes come, store only what was written since the last
        // upload; a file only created or truncated by `open` waits for its last release.
        if still_writing.is_none() && !g.written {
            return Ok(());
        }
        self.store_at_close(h.ino, &mut g).await?;
        self.unstored_error(h.ino)
    }

    /// fsync: store a dirty file now; the upload's error is the caller's. On any handle, reports
    /// changes to the file that could not be stored after an earlier last close.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let h = self.handle(fh)?;
        if !h.writable {
            // `sync FILE` opens it read-only: a file waiting in the write cache goes up now.
            self.sync_pending(h.ino).await?;
            return self.unstored_error(h.ino);
        }
        let _change = self.listings.changing();
        if let Some(of) = self.open_file(h.ino) {
            self.upload(h.ino, &mut *of.lock().await).await?;
        }
        self.unstored_error(h.ino)
    }

    /// `EIO` if the last changes to `ino` were not stored after its last close.
    fn unstored_error(&self, ino: u64) -> FsResult<()> {
        match self.inode(ino) {
            Ok(inode) => self.unstored.error(&inode.path).map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    /// Upload an open file if it has unsent changes.
    pub(super) async fn upload(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        if !of.staged.dirty || of.unlinked {
            return Ok(());
        }
        // An upload of an earlier version from the write cache may be in flight: this one goes
        // after it (see `pending/`).
        let _gate = self.take_gate(ino, of).await;
        if !of.staged.dirty || of.unlinked {
            return Ok(()); // that upload stored it
        }
        let (key, opts, posix) = self.upload_target(ino, of)?;
        let started = Instant::now();
        let size = of.staged.size();
        let etag = match of.staged.upload(&self.store, &key, &opts, &self.config.upload).await {
            Ok(etag) => etag,
            Err(e) => {
                error!(
                    key = key.as_str(),
                    errno = e.errno,
                    "could not store the file: {}",
                    e.message
                );
                of.failed = true;
                return Err(e);
            }
        };
        if size >= 64 * 1024 * 1024 {
            info!(
                key = key.as_str(),
                size,
                secs = started.elapsed().as_secs_f64(),
                "uploaded"
            );
        }
        // The server has this version or a later one: the write cache's entry has done its job.
        if let Some(p) = of.pending.take() {
            if let Some(cache) = self.write_cache() {
                cache.remove(&p);
            }
        }
        self.stored(ino, of, &key, opts.metadata, posix, size, etag);
        Ok(())
    }

    /// Record that `of` is stored as `key` (`size` bytes, `etag`) with `metadata`, showing
    /// `posix`: it is clean, and `stat` shows the object.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stored(
        &self,
        ino: u64,
        of: &mut OpenFile,
        key: &str,
        metadata: std::collections::HashMap<String, String>,
        posix: Posix,
        size: u64,
        etag: Option<String>,
    ) {
        of.metadata = metadata;
        of.posix = Posix::default();
        of.failed = false;
        of.written = false;
        of.created = false;
        if let Ok(inode) = self.inode(ino) {
            self.unstored.clear(&inode.path);
        }
        let stat = Stat {
            kind: Kind::File,
            size,
            mtime: SystemTime::now(),
            etag,
            posix: Some(posix),
        };
        self.remember_posix(key, &stat, Instant::now());
        lock(&self.inodes).set_stat(ino, stat, self.fresh_until());
    }

    /// release: the last close of handle `fh`.
    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let Some(h) = lock(&self.handles).remove(&fh) else {
            return Ok(());
        };
        if !h.writable {
            return Ok(());
        }
        let _change = self.listings.changing();
        let Some(of) = self.open_file(h.ino) else {
            return Ok(());
        };
        let mut g = of.lock().await;
        g.handles = g.handles.saturating_sub(1);
        if g.handles > 0 {
            return Ok(());
        }
        let path = self.inode(h.ino).map(|i| i.path).unwrap_or_default();
        let result = if g.failed && g.staged.dirty && !g.unlinked {
            Err(FsError::new(
                libc::EIO,
                "the upload failed and the error was reported to close/fsync",
            ))
        } else {
            self.store_at_close(h.ino, &mut g).await
        };
        if let Err(e) = &result {
            self.unstored.record(&path, e);
        }
        if g.pending.is_some() {
            // In the write cache: it stays an open file until it is uploaded (`pending/`).
            return result;
        }
        g.staged.abandon_stream(&self.store).await;
        lock(&self.open_files).remove(&h.ino);
        if g.pinned {
            g.pinned = false;
            self.forget(h.ino, 1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn fdinfo_is_read_field_by_field() {
        let text = "pos:\t0\nflags:\t0100001\nmnt_id:\t24\nino:\t3\n";
        assert_eq!(
            FdInfo::parse(text),
            Some(FdInfo {
                flags: 0o100001,
                mnt_id: 24,
                ino: 3
            })
        );
        assert_eq!(
            FdInfo::parse("pos:\t0\nflags:\t02\nmnt_id:\t24\n"),
            None,
            "no ino: cannot tell"
        );
    }

    fn fdinfo_of(fd: i32) -> FdInfo {
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).expect("fdinfo");
        FdInfo::parse(&text).expect("this kernel shows ino in fdinfo")
    }

    #[test]
    fn a_process_still_writing_a_file_is_seen_and_one_only_reading_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let writer = std::fs::File::create(&path).expect("create");
        let info = fdinfo_of(writer.as_raw_fd());
        let me = std::process::id();
        assert_eq!(still_writing(me, info.mnt_id, info.ino), Some(true));
        assert_eq!(
            still_writing(me, info.mnt_id + 1_000_000, info.ino),
            Some(false),
            "another mount"
        );
        drop(writer);
        let reader = std::fs::File::open(&path).expect("open");
        assert_eq!(still_writing(me, info.mnt_id, info.ino), Some(false), "read-only");
        drop(reader);
        assert_eq!(still_writing(0, info.mnt_id, info.ino), None, "no pid: cannot tell");
    }

    #[test]
    fn a_mount_id_is_found_for_the_root() {
        let id = crate::mountinfo::mount_id(std::path::Path::new("/")).expect("the root is a mount");
        let f = std::fs::File::open("/").expect("open /");
        assert_eq!(fdinfo_of(f.as_raw_fd()).mnt_id, id);
    }
}
