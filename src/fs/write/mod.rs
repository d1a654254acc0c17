//! Write-back: the contents of a file being written, staged in an unlinked temporary file, and
//! the upload that makes them an object.
//!
//! Files: `mod.rs` (here) the staged contents and writes into them; [`tail`] the in-memory tail
//! of an appending writer and the background writes of full parts to the staging file;
//! [`stream`] the multipart upload parts go into while the file is written, [`upload`] the final
//! upload.
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
//! - `upload` (on `flush`/`fsync`, at the writer's last `close`) sends a PutObject when the file fits one
//!   part, else completes the multipart upload: parts already up at their current generation
//!   are reused, changed or missing ones are sent (in parallel), untouched chunks of the original
//!   object are copied server-side. Every request carries a CRC32 checksum (see `store/s3/objects.rs`).
//!   Nothing is visible until the object is complete; on any failure the multipart upload is
//!   aborted, the original object is untouched, and the error goes back to the caller of
//!   `close`/`fsync`.

mod stream;
mod tail;
mod upload;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::parts::{PartBuf, PartPool};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;
use stream::Stream;
use tail::Tail;

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
        Ok(Self::over(file, size, chunk, base, pool))
    }

    /// Staged contents in `file` (`size` bytes), unfetched past the start when `base` is given.
    fn over(file: File, size: u64, chunk: u64, base: Option<Base>, pool: Arc<PartPool>) -> Self {
        let chunks = size.div_ceil(chunk) as usize;
        Self {
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
        }
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
}

/// Add `more` to the chunks in `sealed`, in order, once each.
fn merge(sealed: &mut Vec<usize>, more: Vec<usize>) {
    sealed.extend(more);
    sealed.sort_unstable();
    sealed.dedup();
}
