//! The final upload of a staged file, at `fsync`/last `close`: one PutObject when the file fits a
//! part, else the multipart upload completed with the parts already up at their current
//! generation (streamed while the file was written, see `stream.rs`), the changed or missing ones
//! sent in parallel, and untouched chunks of the original object copied server-side. On any
//! failure the multipart upload is aborted and the original object is untouched.
//!
//! Also what the write cache asks of a staged file (`fs/pending/`): its whole contents for an
//! entry ([`Staged::whole`]), a file kept across a crash staged again ([`Staged::adopt`]), and
//! contents stored from a copy ([`Staged::stored_as`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::{io_err, Base, PartPool, Staged, UploadConfig, MAX_PARTS};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PartTag, PutOptions, StoreError};

impl Staged {
    /// Stage `file`, whose first `size` bytes are the whole contents (nothing on the server yet):
    /// a file the write cache kept across a crash.
    pub fn adopt(file: File, size: u64, chunk: u64, pool: Arc<PartPool>) -> Self {
        let mut staged = Self::over(file, size, chunk, None, pool);
        staged.dirty = true;
        staged
    }

    /// The whole contents in the staging file (unfetched chunks fetched, the tail written out),
    /// for the write cache to copy.
    pub async fn whole<S: ObjectStore>(&mut self, store: &S) -> FsResult<Arc<File>> {
        self.check_broken()?;
        self.ready.clear();
        self.settle().await?;
        for c in 0..self.present.len() {
            self.populate(store, c).await?;
        }
        Ok(self.file.clone())
    }

    /// The contents are stored as `key` with `etag` (uploaded from a copy): clean now.
    pub fn stored_as(&mut self, key: &str, etag: Option<String>) {
        self.base = Some(Base {
            key: key.to_string(),
            etag,
        });
        self.base_len = self.size;
        self.dirty = false;
    }

    /// Upload the contents to `key` with `opts`; on success the staged file is clean and its
    /// base is the new object. Returns the new ETag.
    pub async fn upload<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        key: &str,
        opts: &PutOptions,
        config: &UploadConfig,
    ) -> FsResult<Option<String>> {
        self.ready.clear();
        self.settle().await?;
        let streamed = self
            .stream
            .as_ref()
            .is_some_and(|s| s.key == key && s.opts.metadata == opts.metadata);
        if self.size <= self.chunk || !streamed {
            self.abandon_stream(store).await;
        }
        let progress = crate::progress::Upload::start(key, self.size);
        let etag = if self.size <= self.chunk {
            for c in 0..self.present.len() {
                self.populate(store.as_ref(), c).await?;
            }
            let _charge = self.pool.budget().charge(self.size).await;
            let mut buf = vec![0u8; self.size as usize];
            self.file
                .read_exact_at(&mut buf, 0)
                .map_err(|e| io_err("cannot read the staging file", e))?;
            store.put_object(key, Bytes::from(buf), opts).await?
        } else {
            self.upload_multipart(store, key, opts, config).await?
        };
        progress.finish();
        self.base = Some(Base {
            key: key.to_string(),
            etag: etag.clone(),
        });
        self.base_len = self.size;
        self.dirty = false;
        Ok(etag)
    }

    async fn upload_multipart<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        key: &str,
        opts: &PutOptions,
        config: &UploadConfig,
    ) -> FsResult<Option<String>> {
        let parts = self.size.div_ceil(self.chunk);
        if parts > MAX_PARTS {
            self.abandon_stream(store).await;
            return Err(FsError::new(
                libc::EFBIG,
                format!(
                    "{key}: {} bytes need {parts} parts of {} bytes; S3 allows {MAX_PARTS}",
                    self.size, self.chunk
                ),
            ));
        }
        let (upload_id, reuse) = match self.stream.take() {
            Some(mut s) => {
                while let Some(r) = s.inflight.join_next().await {
                    s.record(Some(r));
                }
                (s.upload_id, s.done)
            }
            None => (store.create_multipart(key, opts).await?, BTreeMap::new()),
        };
        match self
            .send_parts(store, key, &upload_id, parts, config.concurrency, &reuse)
            .await
        {
            Ok(tags) => match store.complete_multipart(key, &upload_id, tags).await {
                Ok(etag) => Ok(etag),
                Err(e) => {
                    abort(store, key, &upload_id).await;
                    Err(e.into())
                }
            },
            Err(e) => {
                abort(store, key, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn send_parts<S: ObjectStore>(
        &self,
        store: &Arc<S>,
        key: &str,
        upload_id: &str,
        parts: u64,
        concurrency: usize,
        reuse: &BTreeMap<usize, (u64, PartTag)>,
    ) -> FsResult<Vec<(i32, PartTag)>> {
        let mut tasks: JoinSet<Result<(i32, PartTag), StoreError>> = JoinSet::new();
        let mut tags = Vec::with_capacity(parts as usize);
        let mut first_error: Option<FsError> = None;
        for i in 0..parts {
            while tasks.len() >= concurrency.max(1) {
                collect(tasks.join_next().await, &mut tags, &mut first_error);
            }
            if first_error.is_some() {
                break;
            }
            let start = i * self.chunk;
            let end = (start + self.chunk).min(self.size);
            let number = i as i32 + 1;
            if let Some((_, tag)) = reuse.get(&(i as usize)).filter(|(g, _)| *g == self.gens[i as usize]) {
                tags.push((number, tag.clone()));
                continue;
            }
            let (store, key, upload_id) = (store.clone(), key.to_string(), upload_id.to_string());
            let copy_from = match (&self.base, self.present[i as usize]) {
                (Some(base), false) if end <= self.base_len => Some(base.clone()),
                _ => None,
            };
            match copy_from {
                Some(base) => {
                    tasks.spawn(async move {
                        let tag = store
                            .upload_part_copy(&key, &upload_id, number, &base.key, start..end, base.etag.as_deref())
                            .await?;
                        Ok((number, tag))
                    });
                }
                None => {
                    let mut buf = self.pool.take().await;
                    if let Err(e) = self.file.read_exact_at(buf.filled((end - start) as usize), start) {
                        first_error = Some(io_err("cannot read the staging file", e));
                        break;
                    }
                    tasks.spawn(async move {
                        let tag = store.upload_part(&key, &upload_id, number, buf.into_bytes()).await?;
                        Ok((number, tag))
                    });
                }
            }
        }
        while let Some(r) = tasks.join_next().await {
            collect(Some(r), &mut tags, &mut first_error);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        tags.sort_by_key(|(n, _)| *n);
        Ok(tags)
    }
}

type PartResult = Result<Result<(i32, PartTag), StoreError>, tokio::task::JoinError>;

fn collect(r: Option<PartResult>, tags: &mut Vec<(i32, PartTag)>, first_error: &mut Option<FsError>) {
    match r {
        Some(Ok(Ok(tag))) => tags.push(tag),
        Some(Ok(Err(e))) => {
            first_error.get_or_insert_with(|| e.into());
        }
        Some(Err(e)) => {
            first_error.get_or_insert_with(|| FsError::new(libc::EIO, format!("a part upload task failed: {e}")));
        }
        None => {}
    }
}

/// Abort a failed multipart upload so no parts are left behind. If the server cannot be reached
/// now (the likely reason the upload failed), keep trying in the background every 2 s for 10
/// minutes.
pub(super) async fn abort<S: ObjectStore>(store: &Arc<S>, key: &str, upload_id: &str) {
    let Err(e) = store.abort_multipart(key, upload_id).await else {
        return;
    };
    tracing::warn!(
        key,
        upload_id,
        "could not abort the failed multipart upload yet ({e}); retrying in the background"
    );
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (store, key, upload_id) = (store.clone(), key.to_string(), upload_id.to_string());
    rt.spawn(async move {
        for _ in 0..300 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if store.abort_multipart(&key, &upload_id).await.is_ok() {
                tracing::info!(key = key.as_str(), "aborted the failed multipart upload");
                return;
            }
        }
        tracing::error!(
            key = key.as_str(),
            upload_id = upload_id.as_str(),
            "gave up aborting a failed multipart upload"
        );
    });
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::fs::parts::PartPool;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::AtomicU64;

    /// Background staging writes sleep this long first (to widen the race they must not lose).
    pub static STAGE_DELAY_MS: AtomicU64 = AtomicU64::new(0);

    const MIB: usize = 1024 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_budget_of_one_part_never_deadlocks_the_writer() {
        // 6 MiB of budget, 5 MiB parts (what `mount_cache`'s tiny-budget test runs): writes of
        // odd sizes complete a part and start the next in one call, and the first part is read
        // back from the staging file while the second's buffer is held. Every write and the
        // upload must finish.
        let store = Arc::new(MemoryStore::new());
        let chunk = 5 * MIB as u64;
        let budget = Budget::new(6 << 20);
        let pool = PartPool::new(budget.clone(), chunk);
        let mut staged = Staged::new(&std::env::temp_dir(), chunk, None, 0, pool).expect("stage");
        let config = UploadConfig {
            part_size: chunk,
            ..UploadConfig::default()
        };
        let opts = PutOptions::default();
        let body: Vec<u8> = (0..13 * MIB + 7).map(|i| (i % 241) as u8).collect();
        let all = async {
            let mut at = 0;
            for piece in body.chunks(700 * 1024 + 13) {
                let sealed = staged.write(store.as_ref(), at, piece).await.expect("write");
                staged
                    .stream(&store, "k", &opts, &config, sealed)
                    .await
                    .expect("stream");
                at += piece.len() as u64;
            }
            staged.upload(&store, "k", &opts, &config).await.expect("upload");
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("the writer deadlocked on the memory budget");
        assert!(store.body("k").expect("stored")[..] == body[..]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_sent_again_from_the_staging_file_waits_for_its_background_write() {
        STAGE_DELAY_MS.store(300, std::sync::atomic::Ordering::Relaxed);
        let store = Arc::new(MemoryStore::new());
        let chunk = 5 * MIB as u64;
        let pool = PartPool::new(Budget::new(256 << 20), chunk);
        let mut staged = Staged::new(&std::env::temp_dir(), chunk, None, 0, pool).expect("stage");
        let config = UploadConfig::default();
        let opts = PutOptions::default();
        let body: Vec<u8> = (0..11 * MIB).map(|i| (i % 251) as u8).collect();
        // Part 1 (the second) completes from the tail: sent from memory, staged behind.
        let mut sealed = staged.write(store.as_ref(), 0, &body[..5 * MIB]).await.expect("write");
        sealed.extend(
            staged
                .write(store.as_ref(), chunk, &body[5 * MIB..10 * MIB])
                .await
                .expect("write"),
        );
        staged
            .stream(&store, "a", &opts, &config, sealed)
            .await
            .expect("stream");
        // The key changes (a rename): the new upload sends part 1 from the staging file, whose
        // background write is still sleeping.
        let sealed = staged
            .write(store.as_ref(), 2 * chunk, &body[10 * MIB..])
            .await
            .expect("write");
        staged
            .stream(&store, "b", &opts, &config, sealed)
            .await
            .expect("stream");
        staged.upload(&store, "b", &opts, &config).await.expect("upload");
        STAGE_DELAY_MS.store(0, std::sync::atomic::Ordering::Relaxed);
        let stored = store.body("b").expect("stored");
        assert!(stored[..] == body[..], "part 1 was sent before it was staged");
    }
}
