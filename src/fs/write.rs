//! Write-back: the contents of a file being written, staged in an unlinked temporary file, and
//! the upload that makes them an object.
//!
//! Model:
//! - One [`Staged`] per inode open for writing, shared by all its handles. Writes go to the
//!   staging file at their offset (so memory use does not grow with file size: the page cache and
//!   the temporary directory hold the data, and a full disk shows as `ENOSPC` on `write`).
//! - The file is cut into part-sized chunks. A chunk is *present* once the staging file holds its
//!   current bytes. Chunks of the original object are fetched only when a write, read or truncate
//!   touches them partly (read-modify-write, one ranged GET per chunk); chunks nobody touched stay
//!   on the server and are reused by UploadPartCopy, so appending to a large object does not
//!   download or re-upload it.
//! - Streaming: once a writer has moved past the end of a chunk that it filled, that chunk goes
//!   up in the background as a part of a multipart upload created for the file (at most
//!   `concurrency` parts in flight per file: a writer that gets further ahead waits, which bounds
//!   memory to `concurrency × part_size` per file, and every part buffer is charged to the
//!   mount's memory budget: when it is spent, writers wait for parts to finish). Each chunk has a generation, bumped by every
//!   change, so a part uploaded before its chunk was written again is sent again at the end.
//! - Appending past the first chunk fills an in-memory *tail*: a part buffer from the pool
//!   (`parts.rs`) holding the chunk being appended to. When it is full it is sent as the part
//!   as it is, and written to the staging file in the background (at most [`STAGING_AHEAD`]
//!   such writes at once; a writer further ahead waits), with `O_DIRECT` where the staging
//!   filesystem allows it: a buffered write of every byte into the page cache cost the daemon
//!   more CPU than anything else in a large copy. Any other operation first waits for those
//!   writes and writes the tail out (*settles*), so the staging file is again the whole truth;
//!   a settle that fails keeps the tail, and the operation fails. A background write that
//!   fails loses bytes the writer was told were written: every later write, `fsync` and `close`
//!   of the file fails with that error, and nothing is stored.
//! - `upload` (on `flush`/`fsync`, i.e. every `close`) sends a PutObject when the file fits one
//!   part, else completes the multipart upload: parts already up at their current generation
//!   are reused, changed or missing ones are sent (in parallel), untouched chunks of the original
//!   object are copied server-side. Every request carries a CRC32 checksum (see `store/s3/objects.rs`).
//!   Nothing is visible until the object is complete; on any failure the multipart upload is
//!   aborted, the original object is untouched, and the error goes back to the caller of
//!   `close`/`fsync`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::task::JoinSet;

use super::parts::{PartBuf, PartPool};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PartTag, PutOptions, StoreError};

/// Settings of the write path.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    /// Multipart part size (≥ 5 MiB). Files up to this size go up as one PutObject.
    pub part_size: u64,
    /// Parts in flight per file.
    pub concurrency: usize,
    /// Directory for staging files.
    pub staging_dir: std::path::PathBuf,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            part_size: 8 * 1024 * 1024,
            concurrency: 8,
            staging_dir: std::env::temp_dir(),
        }
    }
}

/// Background staging-file writes of full parts at once.
pub const STAGING_AHEAD: usize = 2;

/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;
/// S3's smallest part size.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The object a staged file started from.
#[derive(Clone, Debug)]
pub struct Base {
    pub key: String,
    pub etag: Option<String>,
}

/// A file's contents while it is open for writing.
#[derive(Debug)]
pub struct Staged {
    file: Arc<File>,
    size: u64,
    chunk: u64,
    present: Vec<bool>,
    /// Where unfetched bytes come from, and how many leading bytes of the file still equal it.
    base: Option<Base>,
    base_len: u64,
    /// Per chunk: bumped by every change to it.
    gens: Vec<u64>,
    /// The multipart upload that chunks are streamed into while the file is written.
    stream: Option<Stream>,
    /// Contents differ from the object on the server.
    pub dirty: bool,
    /// Part buffers, charged to the memory budget (writers wait for room).
    pool: Arc<PartPool>,
    /// The chunk being appended to, held in memory (see the module doc).
    tail: Option<Tail>,
    /// Chunks the last write completed from the tail: (chunk, generation, bytes), for `stream`.
    ready: Vec<(usize, u64, Bytes)>,
    /// The staging file opened again with `O_DIRECT` (opened at the first full tail; `None`
    /// inside when the filesystem refuses it or the part size is not aligned).
    direct: Option<Option<Arc<File>>>,
    /// Full parts being written to the staging file in the background, oldest first.
    staging: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Set when a write failed, in the foreground or in the background: the contents are not
    /// what the writer wrote, so the file is never stored (every later write and upload fails).
    broken: Option<FsError>,
}

/// The chunk an appending writer is filling: its bytes from the chunk's start to the file's end.
#[derive(Debug)]
struct Tail {
    chunk: usize,
    buf: PartBuf,
}

type PartJob = (usize, u64, Result<PartTag, StoreError>);

/// A multipart upload in progress while the file is being written.
#[derive(Debug)]
struct Stream {
    key: String,
    opts: PutOptions,
    upload_id: String,
    /// Finished parts: chunk → (generation uploaded, tag).
    done: BTreeMap<usize, (u64, PartTag)>,
    /// Parts sent: chunk → generation sent.
    sent: BTreeMap<usize, u64>,
    inflight: JoinSet<PartJob>,
}

impl Stream {
    fn record(&mut self, r: Option<Result<PartJob, tokio::task::JoinError>>) {
        if let Some(Ok((c, generation, Ok(tag)))) = r {
            self.done.insert(c, (generation, tag));
        }
        // A failed part is simply not recorded: the final upload sends it again.
    }
}

fn io_err(what: &str, e: std::io::Error) -> FsError {
    FsError::new(e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
}

impl Staged {
    /// Stage a file that starts as `base` (`size` bytes) or, with `None`, empty; part buffers
    /// come from `pool`.
    pub fn new(dir: &Path, chunk: u64, base: Option<Base>, size: u64, pool: Arc<PartPool>) -> FsResult<Self> {
        let file = tempfile::tempfile_in(dir).map_err(|e| io_err(&format!("cannot stage in {}", dir.display()), e))?;
        file.set_len(size)
            .map_err(|e| io_err("cannot size the staging file", e))?;
        let chunks = size.div_ceil(chunk) as usize;
        Ok(Self {
            file: Arc::new(file),
            size,
            chunk,
            present: vec![base.is_none(); chunks],
            base_len: if base.is_some() { size } else { 0 },
            base,
            gens: vec![0; chunks],
            stream: None,
            dirty: false,
            pool,
            tail: None,
            ready: Vec::new(),
            direct: None,
            staging: Vec::new(),
            broken: None,
        })
    }

    /// The object moved (rename): fetch unfetched chunks from `key` from now on.
    pub fn rebase(&mut self, key: &str, etag: Option<String>) {
        if let Some(base) = &mut self.base {
            base.key = key.to_string();
            base.etag = etag;
        }
    }

    /// Current size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fetch chunk `c` from the base object if it is needed and not here yet.
    async fn populate<S: ObjectStore>(&mut self, store: &S, c: usize) -> FsResult<()> {
        if self.present.get(c).copied().unwrap_or(true) {
            return Ok(());
        }
        let start = c as u64 * self.chunk;
        let end = ((c as u64 + 1) * self.chunk).min(self.base_len);
        if start < end {
            if let Some(base) = &self.base {
                let data = store.get_range(&base.key, start..end, base.etag.as_deref()).await?;
                if (data.len() as u64) != end - start {
                    return Err(FsError::new(
                        libc::EIO,
                        format!(
                            "{} returned {} bytes for a {}-byte range",
                            base.key,
                            data.len(),
                            end - start
                        ),
                    ));
                }
                self.file
                    .write_all_at(&data, start)
                    .map_err(|e| io_err("cannot write the staging file", e))?;
            }
        }
        self.present[c] = true;
        Ok(())
    }

    fn resize_chunks(&mut self) {
        let chunks = self.size.div_ceil(self.chunk) as usize;
        // New chunks lie beyond the base (or were zero-extended): nothing to fetch for them.
        self.present.resize(chunks, true);
        self.gens.resize(chunks, 0);
    }

    fn touch(&mut self, from: u64, to: u64) {
        if to <= from {
            return;
        }
        let last = (((to - 1) / self.chunk) as usize).min(self.gens.len().saturating_sub(1));
        for c in (from / self.chunk) as usize..=last {
            if let Some(g) = self.gens.get_mut(c) {
                *g += 1;
            }
        }
    }

    /// The staging file opened with `O_DIRECT`, if it can be and parts are aligned for it.
    fn direct(&mut self) -> Option<Arc<File>> {
        self.direct
            .get_or_insert_with(|| {
                if !self.chunk.is_multiple_of(super::parts::ALIGN as u64) {
                    return None;
                }
                let path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)
                    .inspect_err(|e| tracing::debug!("staging without O_DIRECT: {e}"))
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }

    /// Write a full part at `offset` of the staging file in the background.
    async fn stage_behind(&mut self, offset: u64, bytes: Bytes) {
        while self.staging.len() >= STAGING_AHEAD {
            let oldest = self.staging.remove(0);
            let r = oldest.await;
            self.note_staged(r);
        }
        let (file, direct) = (self.file.clone(), self.direct());
        self.staging.push(tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            std::thread::sleep(std::time::Duration::from_millis(
                tests::STAGE_DELAY_MS.load(std::sync::atomic::Ordering::Relaxed),
            ));
            match direct.map(|d| d.write_all_at(&bytes, offset)) {
                // EINVAL: this file or buffer is not fit for O_DIRECT after all.
                Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => file.write_all_at(&bytes, offset),
                Some(r) => r,
                None => file.write_all_at(&bytes, offset),
            }
        }));
    }

    fn note_staged(&mut self, r: Result<std::io::Result<()>, tokio::task::JoinError>) {
        let e = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => io_err("cannot write the staging file", e),
            Err(e) => FsError::new(libc::EIO, format!("a staging-file write failed: {e}")),
        };
        self.break_with(&e, "bytes written earlier are lost");
    }

    /// Mark the contents as not what the writer wrote, after `e`.
    fn break_with(&mut self, e: &FsError, why: &str) {
        if self.broken.is_none() {
            tracing::error!("{}: {why}; this file will not be stored", e.message);
            self.broken = Some(FsError::new(
                e.errno,
                format!("{} ({why}; the file is not stored)", e.message),
            ));
        }
    }

    /// Fail if a write failed.
    fn check_broken(&self) -> FsResult<()> {
        self.broken.clone().map_or(Ok(()), Err)
    }

    /// Wait for the background staging writes; fail if one failed.
    async fn drain_staging(&mut self) -> FsResult<()> {
        for h in std::mem::take(&mut self.staging) {
            let r = h.await;
            self.note_staged(r);
        }
        self.check_broken()
    }

    /// Wait for the background staging writes, then write the tail to the staging file (before
    /// anything but an append). On failure the tail stays, so nothing written is lost.
    async fn settle(&mut self) -> FsResult<()> {
        self.drain_staging().await?;
        write_out(&self.file, &mut self.tail, self.chunk)
    }

    /// An append at the end of a file past its first chunk: goes to the tail (started at a
    /// chunk boundary). Returns the chunks completed and how many bytes were taken, or `None`
    /// when this write is not such an append (the tail, if any, is then settled by the caller).
    /// A write that completes a part and goes on takes a new tail only if memory is free now:
    /// the completed part's buffer is released only once `stream` sends it, after this write, so
    /// waiting here could wait forever; the rest then goes through the staging file.
    async fn append(&mut self, offset: u64, data: &[u8]) -> FsResult<Option<(Vec<usize>, usize)>> {
        if offset != self.size || offset < self.chunk {
            return Ok(None);
        }
        let starts_chunk = offset.is_multiple_of(self.chunk);
        match &self.tail {
            Some(t) if t.chunk as u64 == offset / self.chunk && !starts_chunk => {}
            None if starts_chunk => {}
            _ => return Ok(None),
        }
        let mut sealed = Vec::new();
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let c = (at / self.chunk) as usize;
            let c_end = (c as u64 + 1) * self.chunk;
            let n = rest.len().min((c_end - at) as usize);
            let mut tail = match self.tail.take() {
                Some(t) => t,
                None if self.ready.is_empty() => Tail {
                    chunk: c,
                    buf: self.pool.take().await,
                },
                None => match self.pool.try_take() {
                    Some(buf) => Tail { chunk: c, buf },
                    None => break,
                },
            };
            tail.buf.extend(&rest[..n]);
            let end = at + n as u64;
            self.size = end;
            self.resize_chunks();
            self.touch(at, end);
            self.dirty = true;
            if end == c_end {
                // Complete: on its way as a part, and into the staging file behind the writer.
                let bytes = tail.buf.into_bytes();
                self.stage_behind(c as u64 * self.chunk, bytes.clone()).await;
                sealed.push(c);
                self.ready.push((c, self.gens[c], bytes));
            } else {
                self.tail = Some(tail);
            }
            at = end;
            rest = &rest[n..];
        }
        if let Some(prev) = ((offset / self.chunk) as usize).checked_sub(1) {
            // As below: the chunk before is proposed again (it may have been completed while
            // the file still fit in one part).
            if self.present[prev] && !sealed.contains(&prev) {
                sealed.insert(0, prev);
            }
        }
        Ok(Some((sealed, data.len() - rest.len())))
    }

    /// Write `data` at `offset`. Returns the chunks this write completed (the writer is past
    /// their end and every byte is here), ready to be streamed.
    /// A failed write leaves the contents short of what the writer wrote: the file is then never
    /// stored (no partial object replaces the previous one), and later writes fail the same way.
    pub async fn write<S: ObjectStore>(&mut self, store: &S, offset: u64, data: &[u8]) -> FsResult<Vec<usize>> {
        self.ready.clear();
        self.check_broken()?;
        let r = self.write_any(store, offset, data).await;
        if let Err(e) = &r {
            self.break_with(e, "a write to it failed");
        }
        r
    }

    async fn write_any<S: ObjectStore>(&mut self, store: &S, offset: u64, data: &[u8]) -> FsResult<Vec<usize>> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        if let Some((mut sealed, taken)) = self.append(offset, data).await? {
            if taken < data.len() {
                let more = self.write_through(store, offset + taken as u64, &data[taken..]).await?;
                merge(&mut sealed, more);
            }
            return Ok(sealed);
        }
        let boundary = (offset / self.chunk + 1) * self.chunk;
        if self.tail.is_none() && offset == self.size && offset + data.len() as u64 > boundary {
            // An append crossing into the next chunk: up to the boundary the usual way, the
            // rest starts a tail there.
            let split = (boundary - offset) as usize;
            let mut sealed = self.write_through(store, offset, &data[..split]).await?;
            let rest = &data[split..];
            let more = match self.append(boundary, rest).await? {
                Some((more, taken)) if taken == rest.len() => more,
                Some((mut more, taken)) => {
                    let after = self
                        .write_through(store, boundary + taken as u64, &rest[taken..])
                        .await?;
                    merge(&mut more, after);
                    more
                }
                None => self.write_through(store, boundary, rest).await?,
            };
            merge(&mut sealed, more);
            return Ok(sealed);
        }
        self.write_through(store, offset, data).await
    }

    /// A write through the staging file (anything but an append to the tail).
    async fn write_through<S: ObjectStore>(&mut self, store: &S, offset: u64, data: &[u8]) -> FsResult<Vec<usize>> {
        self.settle().await?;
        let end = offset + data.len() as u64;
        // A write past the end leaves a hole: the chunk holding the old end must keep its bytes.
        if offset > self.size && self.size > 0 {
            self.populate(store, ((self.size - 1) / self.chunk) as usize).await?;
        }
        let first = (offset / self.chunk) as usize;
        let last = ((end - 1) / self.chunk) as usize;
        let live_end = self.size.max(end);
        for c in first..=last.min(self.present.len().saturating_sub(1)) {
            if c >= self.present.len() {
                break;
            }
            let c_start = c as u64 * self.chunk;
            let c_end = c_start + self.chunk;
            if offset <= c_start && end >= c_end.min(live_end) {
                self.present[c] = true; // every live byte of the chunk comes from this write
            } else {
                self.populate(store, c).await?;
            }
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_err("cannot write the staging file", e))?;
        if end > self.size {
            self.size = end;
            self.resize_chunks();
        }
        self.touch(offset, end);
        self.dirty = true;
        // Chunks entirely below `end`, from the one before this write (a chunk that was completed
        // while the file still fit in one part is proposed again once it no longer does).
        let first = ((offset / self.chunk) as usize).saturating_sub(1);
        let sealed = (end / self.chunk) as usize;
        Ok((first..sealed).filter(|c| self.present[*c]).collect())
    }

    /// Read up to `len` bytes at `offset`, including what has not been uploaded yet.
    pub async fn read<S: ObjectStore>(&mut self, store: &S, offset: u64, len: u32) -> FsResult<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        self.ready.clear();
        self.settle().await?;
        let end = (offset + u64::from(len)).min(self.size);
        for c in (offset / self.chunk) as usize..=((end - 1) / self.chunk) as usize {
            self.populate(store, c).await?;
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| io_err("cannot read the staging file", e))?;
        Ok(Bytes::from(buf))
    }

    /// Truncate or extend (with zeros) to `size`.
    pub async fn set_size<S: ObjectStore>(&mut self, store: &S, size: u64) -> FsResult<()> {
        if size == self.size {
            return Ok(());
        }
        self.ready.clear();
        self.settle().await?;
        if size < self.size && !size.is_multiple_of(self.chunk) {
            self.populate(store, (size / self.chunk) as usize).await?;
        }
        if size > self.size && self.size > 0 {
            self.populate(store, ((self.size - 1) / self.chunk) as usize).await?;
        }
        self.file
            .set_len(size)
            .map_err(|e| io_err("cannot resize the staging file", e))?;
        let (from, to) = (size.min(self.size), size.max(self.size));
        self.base_len = self.base_len.min(size);
        self.size = size;
        self.resize_chunks();
        self.touch(from, to);
        self.dirty = true;
        Ok(())
    }

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

/// Write `tail` (of `chunk`-byte chunks) to the staging `file` and drop it; on failure it stays,
/// so nothing written is lost.
fn write_out(file: &File, tail: &mut Option<Tail>, chunk: u64) -> FsResult<()> {
    if let Some(t) = tail {
        file.write_all_at(t.buf.as_ref(), t.chunk as u64 * chunk)
            .map_err(|e| io_err("cannot write the staging file", e))?;
        *tail = None;
    }
    Ok(())
}

/// Add `more` to the chunks in `sealed`, in order, once each.
fn merge(sealed: &mut Vec<usize>, more: Vec<usize>) {
    sealed.extend(more);
    sealed.sort_unstable();
    sealed.dedup();
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
async fn abort<S: ObjectStore>(store: &Arc<S>, key: &str, upload_id: &str) {
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
mod tests {
    use super::*;
    use crate::budget::Budget;
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
