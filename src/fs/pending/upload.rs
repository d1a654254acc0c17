//! The uploads of files waiting in the write cache, and what each came to: a background upload
//! from a private copy of the entry behind the file's upload gate (never holding the file's
//! lock while its requests are in flight), its outcome applied by whoever takes the gate next,
//! retries of failures that pass and `recovery/` for refusals; and `sync_pending`, the upload
//! now that `fsync` and the operations needing the object ask for.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{error, warn};

use super::{lasting, Finished, GateGuard, FIRST_RETRY, MAX_RETRY};
use crate::error::{FsError, FsResult};
use crate::fs::files::OpenFile;
use crate::fs::meta::Posix;
use crate::fs::write::Staged;
use crate::fs::write_cache::{entry, Copy, Pending};
use crate::fs::{lock, S3Fs};
use crate::store::{ObjectStore, PutOptions};

impl<S: ObjectStore> S3Fs<S> {
    /// Take `of`'s upload gate, waiting for an upload of it in flight, with what that upload
    /// came to applied to `of` first. Called while holding `of`'s lock.
    pub(in crate::fs) async fn take_gate(&self, ino: u64, of: &mut OpenFile) -> GateGuard {
        let mut gate = of.upload_gate.clone().lock_owned().await;
        if let Some(f) = gate.finished.take() {
            let _ = self.apply_finished(ino, of, f);
        }
        gate
    }

    /// Apply the outcome of an upload from the write cache to the file; the error, when the
    /// entry it uploaded is still the file's latest.
    fn apply_finished(&self, ino: u64, of: &mut OpenFile, f: Finished) -> Option<FsError> {
        let cache = self.write_cache.get()?.clone();
        let current = of.pending.as_ref().is_some_and(|p| p.seq == f.seq);
        match f.result {
            Ok(etag) => {
                of.created = false;
                if !current {
                    return None;
                }
                if let Some(p) = of.pending.take() {
                    cache.remove(&p);
                }
                of.attempts = 0;
                if of.journaled && of.handles == 0 {
                    let h = f.header;
                    of.staged.stored_as(&h.key, etag.clone());
                    let posix = Posix::from_metadata(&h.metadata);
                    self.stored(ino, of, &h.key, h.metadata, posix, h.size, etag);
                }
                None
            }
            Err(e) if !current => {
                error!(
                    key = f.header.key.as_str(),
                    errno = e.errno,
                    "write cache: an earlier version could not be stored ({}); a later one is queued",
                    e.message
                );
                None
            }
            Err(e) => {
                let p = of.pending.clone()?;
                Some(self.upload_failed(ino, of, &p, &f.header.key, &e))
            }
        }
    }

    /// The upload of `p` (the file's latest entry) failed with `e`: a failure that may pass is
    /// retried later; a lasting one moves the contents to `recovery/` and is reported.
    fn upload_failed(&self, ino: u64, of: &mut OpenFile, p: &Pending, key: &str, e: &FsError) -> FsError {
        of.failed = false;
        let Some(cache) = self.write_cache.get().cloned() else {
            return e.clone();
        };
        if !lasting(e) {
            let delay = FIRST_RETRY.saturating_mul(1 << of.attempts.min(6)).min(MAX_RETRY);
            of.attempts += 1;
            warn!(
                key,
                errno = e.errno,
                attempt = of.attempts,
                "write cache: upload failed ({}); kept in the cache, trying again in {} s",
                e.message,
                delay.as_secs()
            );
            cache.queue_later(ino, delay);
            return e.clone();
        }
        let path = self.inode(ino).map(|i| i.path).unwrap_or_else(|_| key.to_string());
        let kept = match cache.to_recovery(p, key) {
            Ok(dst) => format!("its contents are kept in {}", dst.display()),
            Err(io) => {
                error!("write cache: cannot move the entry of {key} to recovery/: {io}; it stays in the cache");
                format!("its contents stay in {}", cache.dir().display())
            }
        };
        error!(
            key,
            errno = e.errno,
            "write cache: the server refused {key} for good ({}); {kept}",
            e.message
        );
        let cause = FsError::new(e.errno, format!("{}; {kept}", e.message));
        self.unstored.record(&path, &cause);
        of.pending = None;
        if of.journaled {
            of.staged.dirty = false;
        }
        lock(&self.inodes).expire(ino);
        cause
    }

    /// Upload pending file `ino` from its entry (from the queue: not while a writer holds it),
    /// without holding the file's lock while the requests are in flight, so that it stays
    /// readable and writable meanwhile. Returns the upload's error.
    pub(in crate::fs) async fn upload_pending(&self, ino: u64) -> FsResult<()> {
        let Some(cache) = self.write_cache.get().cloned() else {
            return Ok(());
        };
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        let current = lock(&self.open_files)
            .get(&ino)
            .is_some_and(|cur| Arc::ptr_eq(cur, &of));
        if !current {
            return Ok(());
        }
        // Another upload of this file is in flight: never wait for it holding the file's lock
        // (readers and writers would wait too); look again shortly.
        let Ok(mut gate) = g.upload_gate.clone().try_lock_owned() else {
            cache.queue_later(ino, Duration::from_millis(100));
            return Ok(());
        };
        if let Some(f) = gate.finished.take() {
            let _ = self.apply_finished(ino, &mut g, f);
        }
        if g.unlinked {
            if let Some(p) = g.pending.take() {
                cache.remove(&p);
            }
        }
        if g.pending.is_none() {
            drop(gate);
            self.retire(ino, &of, &mut g).await;
            return Ok(());
        }
        if g.handles > 0 {
            return Ok(()); // its writer's last close makes a new entry and queues it
        }
        if !g.journaled && g.staged.dirty {
            // Changed with no handle open since its entry (chmod, utimes, setfattr): a new entry.
            if let Err(e) = self.journal(&cache, ino, &mut g, None).await {
                warn!(
                    ino,
                    "write cache: cannot write the file's new entry ({}); uploading it now", e.message
                );
                drop(gate);
                let r = self.upload(ino, &mut g).await;
                self.retire(ino, &of, &mut g).await;
                return r;
            }
        }
        let Some(p) = g.pending.clone() else {
            return Ok(());
        };
        let small = self.config.upload.part_size;
        let (header, copy) = match cache.open_entry(&p, &self.config.upload.staging_dir, small) {
            Ok(x) => x,
            Err(e) => {
                // The staged contents are the same: a new entry from them.
                error!(ino, "write cache: cannot read an entry back ({e}); writing it again");
                g.journaled = false;
                drop(gate);
                return self.store_at_close(ino, &mut g).await;
            }
        };
        drop(g);
        let opts = PutOptions {
            metadata: header.metadata.clone(),
            content_type: header.content_type.clone(),
        };
        let result = match copy {
            // Smaller than the entry, so at most one part: one PutObject.
            Copy::Memory(buf) => {
                let _charge = self.budget.charge(buf.len() as u64).await;
                self.store
                    .put_object(&header.key, Bytes::from(buf), &opts)
                    .await
                    .map_err(FsError::from)
            }
            Copy::File(f) => self.upload_copy(f, &header, &opts).await,
        };
        let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
        gate.finished = Some(Finished {
            seq: p.seq,
            header,
            result,
        });
        drop(gate);
        let mut g = of.lock().await;
        let gate = g.upload_gate.clone().lock_owned().await;
        let error = {
            let mut gate = gate;
            gate.finished.take().and_then(|f| self.apply_finished(ino, &mut g, f))
        };
        self.retire(ino, &of, &mut g).await;
        match error {
            Some(e) => Err(e),
            None => outcome.or(Ok(())),
        }
    }

    /// Upload the copy `file` of an entry with `header` (PutObject or multipart).
    async fn upload_copy(
        &self,
        file: std::fs::File,
        header: &entry::Header,
        opts: &PutOptions,
    ) -> FsResult<Option<String>> {
        let mut staged = Staged::adopt(file, header.size, self.config.upload.part_size, self.parts.clone());
        staged.upload(&self.store, &header.key, opts, &self.config.upload).await
    }

    /// Upload pending file `ino` now, even while a writer holds it (`fsync`, and operations that
    /// need the object in S3 first).
    pub(in crate::fs) async fn sync_pending(&self, ino: u64) -> FsResult<()> {
        if self.write_cache.get().is_none() {
            return Ok(());
        }
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let _change = self.listings.changing();
        let mut g = of.lock().await;
        let Some(p) = g.pending.clone() else {
            return Ok(());
        };
        let key = self.upload_target(ino, &g).map(|t| t.0).unwrap_or_default();
        let result = self.upload(ino, &mut g).await;
        let result = match result {
            Err(e) if g.pending.as_ref() == Some(&p) => Err(self.upload_failed(ino, &mut g, &p, &key, &e)),
            r => r,
        };
        self.retire(ino, &of, &mut g).await;
        result
    }
}
