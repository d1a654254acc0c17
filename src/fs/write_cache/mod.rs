//! The write cache (`--write-cache DIR`): the files whose last `close` returned before they
//! were stored in S3, kept durably on local disk until they are.
//!
//! This module owns the directory and the queue; what a close, an upload, a rename or a delete of
//! such a file does is `fs/pending/`.
//! - One directory per endpoint and bucket under `DIR`, holding one entry per file
//!   ([`entry`]: contents, key, metadata, CRC32), written and synced (with its directory) before
//!   `close` returns, and removed (synced too) only once the server confirmed the upload.
//! - `recovery/` beside the entries keeps the contents of files the server refused for good
//!   (access denied, retention, bucket gone), at their key's path.
//! - The queue hands files (by inode) to the background uploads, at once or after a delay (a
//!   retry after a failure); [`WriteCache::settled`] wakes whoever waits for the queue to empty.
//! - At the next mount [`WriteCache::open`] returns the entries a crash left (the highest of
//!   each lineage; older ones and damaged ones are set aside), to be uploaded again.

pub mod entry;

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{error, warn};

/// Settings of the write cache.
#[derive(Clone, Debug)]
pub struct WriteCacheConfig {
    /// `--write-cache DIR`.
    pub dir: PathBuf,
    /// Bytes of entries at most (`--write-cache-size`); a close beyond uploads at once.
    pub max_size: u64,
    /// Files larger than this are uploaded at close, as without the cache.
    pub max_file: u64,
    /// Files waiting at most; a close beyond uploads at once.
    pub max_files: u64,
    /// Uploads in flight from the cache at once.
    pub uploads: usize,
    /// How long the daemon waits after unmount for the cache to empty (`None`: until it does).
    pub drain_deadline: Option<Duration>,
}

/// Removed entries are durably gone within this long (see [`WriteCache::remove`]).
pub const REMOVALS_SYNCED_WITHIN: Duration = Duration::from_millis(50);

/// Defaults of the options.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 30;
pub const DEFAULT_MAX_FILE: u64 = 8 << 20;
pub const DEFAULT_MAX_FILES: u64 = 10_000;

/// A file's entry in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub lineage: u64,
    pub seq: u64,
    /// Bytes of the entry file.
    pub bytes: u64,
}

/// A private copy of an entry's contents, to upload from.
pub enum Copy {
    Memory(Vec<u8>),
    File(std::fs::File),
}

/// An entry an earlier mount left.
#[derive(Debug)]
pub struct Leftover {
    pub header: entry::Header,
    pub path: PathBuf,
    pub pending: Pending,
}

struct Queue {
    ready: VecDeque<u64>,
    later: Vec<(Instant, u64)>,
}

/// The cache directory of one bucket, and its upload queue.
pub struct WriteCache {
    dir: PathBuf,
    recovery: PathBuf,
    config: WriteCacheConfig,
    next_id: AtomicU64,
    used: AtomicU64,
    files: AtomicU64,
    /// Entries removed since the directory was last synced.
    unsynced: std::sync::atomic::AtomicBool,
    queue: Mutex<Queue>,
    queued: tokio::sync::Notify,
    /// Signalled whenever an entry leaves the cache.
    pub settled: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl WriteCache {
    /// The cache of `bucket` at `endpoint` under `config.dir` (created if missing), with the
    /// entries an earlier mount left, oldest first.
    pub fn open(config: WriteCacheConfig, endpoint: &str, bucket: &str) -> std::io::Result<(Self, Vec<Leftover>)> {
        let dir = crate::store::journal::state_file(&config.dir, "files", endpoint, bucket, "d");
        let recovery = dir.join("recovery");
        std::fs::create_dir_all(&recovery)?;
        let mut found: HashMap<u64, Leftover> = HashMap::new();
        let mut max_id = 0;
        let mut used = 0;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let path = e.path();
            if path.extension().is_none_or(|x| x != "wc") {
                continue;
            }
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            let header = match entry::read(&path, None) {
                Ok(h) => h,
                Err(entry::Bad::Damaged(why)) => {
                    let aside = recovery.join(format!(
                        "damaged-{}",
                        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    ));
                    warn!(
                        "write cache: {} is {why} (a close cut off by a crash, which never returned); set aside as {}",
                        path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(&path, &aside);
                    continue;
                }
                Err(entry::Bad::Io(e)) => return Err(e),
            };
            max_id = max_id.max(header.seq).max(header.lineage);
            let pending = Pending {
                lineage: header.lineage,
                seq: header.seq,
                bytes,
            };
            let left = Leftover { header, path, pending };
            match found.get(&left.header.lineage) {
                Some(have) if have.header.seq > left.header.seq => {
                    let _ = std::fs::remove_file(&left.path);
                }
                _ => {
                    used += bytes;
                    if let Some(old) = found.insert(left.header.lineage, left) {
                        used -= old.pending.bytes;
                        let _ = std::fs::remove_file(&old.path);
                    }
                }
            }
        }
        sync_dir(&dir)?;
        let mut leftovers: Vec<Leftover> = found.into_values().collect();
        leftovers.sort_by_key(|l| l.header.seq);
        let cache = Self {
            dir,
            recovery,
            config,
            next_id: AtomicU64::new(max_id + 1),
            used: AtomicU64::new(used),
            files: AtomicU64::new(leftovers.len() as u64),
            unsynced: std::sync::atomic::AtomicBool::new(false),
            queue: Mutex::new(Queue {
                ready: VecDeque::new(),
                later: Vec::new(),
            }),
            queued: tokio::sync::Notify::new(),
            settled: tokio::sync::Notify::new(),
        };
        crate::metrics::write_cache(leftovers.len() as i64, used as i64);
        Ok((cache, leftovers))
    }

    /// Its settings.
    pub fn config(&self) -> &WriteCacheConfig {
        &self.config
    }

    /// Where this bucket's entries are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new number for a lineage or an entry (increasing).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a file of `size` bytes may go to the cache now.
    pub fn takes(&self, size: u64) -> bool {
        size <= self.config.max_file
            && self.used.load(Ordering::Relaxed) + size <= self.config.max_size
            && self.files.load(Ordering::Relaxed) < self.config.max_files
    }

    /// Files and bytes in the cache.
    pub fn held(&self) -> (u64, u64) {
        (self.files.load(Ordering::Relaxed), self.used.load(Ordering::Relaxed))
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.wc"))
    }

    /// Write `header` with the contents of `contents` as a new entry, durably (its directory
    /// synced too, which also makes earlier removals durable).
    pub fn add(&self, header: &entry::Header, contents: &std::fs::File) -> std::io::Result<Pending> {
        let path = self.path_of(header.seq);
        let bytes = entry::write(&path, header, contents)?;
        self.unsynced.store(false, Ordering::SeqCst);
        if let Err(e) = sync_dir(&self.dir) {
            self.unsynced.store(true, Ordering::SeqCst);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.files.fetch_add(1, Ordering::Relaxed);
        crate::metrics::write_cache(1, bytes as i64);
        Ok(Pending {
            lineage: header.lineage,
            seq: header.seq,
            bytes,
        })
    }

    /// Remove an entry. The removal is durable at the next [`WriteCache::sync_removals`] (within
    /// [`REMOVALS_SYNCED_WITHIN`], and before any delete or rename through the mount) or the next
    /// entry, whichever comes first: until then a crash would only upload that version again.
    pub fn remove(&self, p: &Pending) {
        let path = self.path_of(p.seq);
        match std::fs::remove_file(&path) {
            Ok(()) => self.unsynced.store(true, Ordering::SeqCst),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!("write cache: cannot remove {}: {e}", path.display()),
        }
        self.forget(p);
    }

    /// Make the removals so far durable (one directory sync, when there were any).
    pub fn sync_removals(&self) {
        if self.unsynced.swap(false, Ordering::SeqCst) {
            if let Err(e) = sync_dir(&self.dir) {
                self.unsynced.store(true, Ordering::SeqCst);
                warn!("write cache: cannot sync {}: {e}", self.dir.display());
            }
        }
    }

    /// Leave an entry where it is without counting it (an earlier mount's file this mount
    /// cannot upload): the drain at unmount does not wait for it.
    pub fn leave(&self, p: &Pending) {
        self.forget(p);
    }

    fn forget(&self, p: &Pending) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
            Some(u.saturating_sub(p.bytes))
        });
        let _ = self
            .files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
        crate::metrics::write_cache(-1, -(p.bytes as i64));
        self.settled.notify_waiters();
    }

    /// Move an entry the server refused for good to `recovery/KEY` (its contents as a plain
    /// file); returns where they are.
    pub fn to_recovery(&self, p: &Pending, key: &str) -> std::io::Result<PathBuf> {
        let src = self.path_of(p.seq);
        let rel: PathBuf = key
            .split('/')
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")
            .collect();
        let mut dst = self.recovery.join(if rel.as_os_str().is_empty() {
            PathBuf::from("unnamed")
        } else {
            rel
        });
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut n = 1;
        while dst.exists() {
            let name = dst
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = match name.rsplit_once(".~") {
                Some((base, _)) => format!("{base}.~{n}"),
                None => format!("{name}.~{n}"),
            };
            dst.set_file_name(name);
            n += 1;
        }
        let mut out = std::fs::File::create(&dst)?;
        match entry::read(&src, Some(&mut out as &mut dyn Write)) {
            Ok(_) => {
                out.sync_all()?;
                if let Some(parent) = dst.parent() {
                    let _ = sync_dir(parent);
                }
                self.remove(p);
                self.sync_removals();
                Ok(dst)
            }
            Err(e) => {
                error!("write cache: cannot read {} back: {e}", src.display());
                Err(std::io::Error::other(e.to_string()))
            }
        }
    }

    /// The header and a private copy of the contents of entry `p` (CRC checked): in memory up
    /// to `in_memory` bytes, else in a temporary file in `staging`.
    pub fn open_entry(&self, p: &Pending, staging: &Path, in_memory: u64) -> Result<(entry::Header, Copy), entry::Bad> {
        if p.bytes <= in_memory {
            let mut buf = Vec::with_capacity(p.bytes as usize);
            let header = entry::read(&self.path_of(p.seq), Some(&mut buf as &mut dyn Write))?;
            return Ok((header, Copy::Memory(buf)));
        }
        let mut file = tempfile::tempfile_in(staging)?;
        let header = entry::read(&self.path_of(p.seq), Some(&mut file as &mut dyn Write))?;
        Ok((header, Copy::File(file)))
    }

    /// Queue file `ino` for upload now.
    pub fn queue(&self, ino: u64) {
        lock(&self.queue).ready.push_back(ino);
        self.queued.notify_one();
    }

    /// Queue file `ino` for upload after `delay`.
    pub fn queue_later(&self, ino: u64, delay: Duration) {
        lock(&self.queue).later.push((Instant::now() + delay, ino));
        self.queued.notify_one();
    }

    /// The next file to upload, waiting for one.
    pub async fn next(&self) -> u64 {
        loop {
            let wait = {
                let mut q = lock(&self.queue);
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = q.later.drain(..).partition(|(t, _)| *t <= now);
                q.later = later;
                q.ready.extend(due.into_iter().map(|(_, ino)| ino));
                if let Some(ino) = q.ready.pop_front() {
                    if !q.ready.is_empty() {
                        self.queued.notify_one();
                    }
                    return ino;
                }
                q.later.iter().map(|(t, _)| t.saturating_duration_since(now)).min()
            };
            let notified = self.queued.notified();
            match wait {
                Some(d) => {
                    let _ = tokio::time::timeout(d, notified).await;
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests;
