//! The multipart upload that completed chunks stream into while the file is written: at most
//! `concurrency` parts in flight per file, each part buffer charged to the memory budget, parts
//! whose buffers the current write filled first. Each chunk has a generation, so a part sent
//! before its chunk changed is sent again by the final upload (`upload.rs`), which completes this
//! upload with the parts already up at their current generation.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::tail::write_out;
use super::upload::abort;
use super::{io_err, Staged, UploadConfig};
use crate::error::FsResult;
use crate::store::{ObjectStore, PartTag, PutOptions, StoreError};

type PartJob = (usize, u64, Result<PartTag, StoreError>);

/// A multipart upload in progress while the file is being written.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) key: String,
    pub(super) opts: PutOptions,
    pub(super) upload_id: String,
    /// Finished parts: chunk → (generation uploaded, tag).
    pub(super) done: BTreeMap<usize, (u64, PartTag)>,
    /// Parts sent: chunk → generation sent.
    pub(super) sent: BTreeMap<usize, u64>,
    pub(super) inflight: JoinSet<PartJob>,
}

impl Stream {
    pub(super) fn record(&mut self, r: Option<Result<PartJob, tokio::task::JoinError>>) {
        if let Some(Ok((c, generation, Ok(tag)))) = r {
            self.done.insert(c, (generation, tag));
        }
        // A failed part is simply not recorded: the final upload sends it again.
    }
}

impl Staged {
    /// Send completed `chunks` in the background as parts of a multipart upload to `key`
    /// (created now if needed, with `opts`). Waits while `concurrency` parts are in flight.
    pub async fn stream<S: ObjectStore>(
        &mut self,
        store: &Arc<S>,
        key: &str,
        opts: &PutOptions,
        config: &UploadConfig,
        chunks: Vec<usize>,
    ) -> FsResult<()> {
        if chunks.is_empty() || self.size <= self.chunk {
            return Ok(());
        }
        if self
            .stream
            .as_ref()
            .is_some_and(|s| s.key != key || s.opts.metadata != opts.metadata)
        {
            self.abandon_stream(store).await;
        }
        if self.stream.is_none() {
            let upload_id = store.create_multipart(key, opts).await?;
            self.stream = Some(Stream {
                key: key.to_string(),
                opts: opts.clone(),
                upload_id,
                done: BTreeMap::new(),
                sent: BTreeMap::new(),
                inflight: JoinSet::new(),
            });
        }
        // A part sent from the staging file (not from this write's full tails) needs the
        // background staging writes done first.
        let from_file = chunks.iter().any(|&c| {
            let g = self.gens[c];
            !self.ready.iter().any(|(rc, rg, _)| *rc == c && *rg == g)
                && self.stream.as_ref().is_none_or(|s| s.sent.get(&c) != Some(&g))
        });
        if from_file {
            self.drain_staging().await?;
        }
        // Parts whose buffers this write filled go first: reading another part from the staging
        // file may wait for memory that only their upload gives back.
        let mut chunks = chunks;
        chunks.sort_by_key(|c| !self.ready.iter().any(|(rc, _, _)| rc == c));
        for c in chunks {
            let generation = self.gens[c];
            let start = c as u64 * self.chunk;
            let end = (start + self.chunk).min(self.size);
            let Some(stream) = self.stream.as_mut() else { break };
            if stream.sent.get(&c) == Some(&generation) {
                continue;
            }
            stream.sent.insert(c, generation);
            while stream.inflight.len() >= config.concurrency.max(1) {
                let r = stream.inflight.join_next().await;
                stream.record(r);
            }
            let ready = self.ready.iter().position(|(rc, g, _)| *rc == c && *g == generation);
            let body = match ready {
                Some(i) => self.ready.swap_remove(i).2,
                None => {
                    self.ready.clear();
                    let mut buf = match self.pool.try_take() {
                        Some(buf) => buf,
                        None => {
                            // No room now: the tail's buffer may be what holds it, and only
                            // this writer can give it back. Write the tail out first.
                            write_out(&self.file, &mut self.tail, self.chunk)?;
                            self.pool.take().await
                        }
                    };
                    self.file
                        .read_exact_at(buf.filled((end - start) as usize), start)
                        .map_err(|e| io_err("cannot read the staging file", e))?;
                    buf.into_bytes()
                }
            };
            let (store, key, id) = (store.clone(), stream.key.clone(), stream.upload_id.clone());
            stream.inflight.spawn(async move {
                let r = store.upload_part(&key, &id, c as i32 + 1, body).await;
                (c, generation, r)
            });
        }
        self.ready.clear();
        Ok(())
    }

    /// Give up the streamed upload (abort it on the server).
    pub async fn abandon_stream<S: ObjectStore>(&mut self, store: &Arc<S>) {
        if let Some(mut s) = self.stream.take() {
            s.inflight.abort_all();
            while s.inflight.join_next().await.is_some() {}
            abort(store, &s.key, &s.upload_id).await;
        }
    }
}
