//! `Reader`: the read state of one open file — sequential detection, a read-ahead window fetched
//! by parallel ranged GETs, and the block cache.
//!
//! The state machine (unit-tested below):
//! - **Sequential** — a read that starts within [`SEQ_SLACK`] of where the previous one ended
//!   (the kernel's own read-ahead may deliver a few reads out of order). The window starts at
//!   [`MIN_WINDOW`] and doubles with every sequential read up to [`MAX_WINDOW`]. Blocks of the
//!   window that are neither cached nor on their way are fetched in ranges of up to
//!   [`FETCH_MAX`], several in flight at once; new ranges are scheduled when less than half a
//!   window is left ahead of the reader, so GETs stay large.
//! - **Jump** — any other read resets the window, cancels read-ahead in flight, and fetches only
//!   the bytes asked for (a random 64 KiB read costs one 64 KiB GET, never megabytes). Blocks
//!   already cached (e.g. after a backward seek within what was read) are served from the cache.
//! - **Memory**: the blocks a read needs now are charged to the budget unconditionally;
//!   read-ahead asks and, refused, halves its window and fetches less. A GET in flight is charged
//!   its size (the body is read into one buffer as it arrives). Fetched blocks go to the
//!   block cache, whose blocks are the first thing the budget gives up. Outside the budget: the
//!   latest fetched range each open handle holds while reading through it (≤ [`FETCH_MAX`]).
//! - **Consistency**: every GET carries `If-Match` with the ETag seen at open, and blocks are
//!   cached under that ETag: if another client replaced the object meanwhile the read fails with
//!   `ESTALE` rather than mixing old and new bytes.
//!
//! This file holds the read path (`read`, `collect`, detached random reads); the window's
//! fetches and their bookkeeping are `ahead.rs`; the unit tests are in `read/tests.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::blocks::{BlockCache, BLOCK};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;
use ahead::Fetch;

mod ahead;
#[cfg(test)]
mod tests;

/// First read-ahead window.
pub const MIN_WINDOW: u64 = BLOCK;
/// Largest read-ahead window.
pub const MAX_WINDOW: u64 = 64 * 1024 * 1024;
/// Largest single ranged GET of read-ahead.
pub const FETCH_MAX: u64 = 8 * 1024 * 1024;
/// How far from the previous read's end a read still counts as sequential.
pub const SEQ_SLACK: u64 = 2 * 1024 * 1024;

/// What a read needs from the filesystem: the store and the block cache.
pub struct ReadCtx<S> {
    pub store: Arc<S>,
    pub cache: Arc<BlockCache>,
}

/// Read state of one open file.
pub struct Reader {
    key: Arc<str>,
    etag: Option<Arc<str>>,
    size: u64,
    next_offset: u64,
    window: u64,
    /// End of what read-ahead has scheduled.
    ahead_end: u64,
    fetches: BTreeMap<u64, Fetch>,
    /// The latest data this handle fetched or took from the cache: (start, bytes).
    current: Option<(u64, Bytes)>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("key", &self.key)
            .field("window", &self.window)
            .field("in_flight", &self.fetches.len())
            .finish()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        for f in self.fetches.values() {
            f.task.abort();
        }
    }
}

fn floor(x: u64) -> u64 {
    x / BLOCK * BLOCK
}

impl Reader {
    /// A reader of `key` (`size` bytes, `etag` at open time).
    pub fn new(key: String, etag: Option<String>, size: u64) -> Self {
        Self {
            key: key.into(),
            etag: etag.map(Into::into),
            size,
            next_offset: 0,
            window: 0,
            ahead_end: 0,
            fetches: BTreeMap::new(),
            current: None,
        }
    }

    /// The object read.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether nothing was read through this reader yet.
    pub fn fresh(&self) -> bool {
        self.next_offset == 0 && self.current.is_none()
    }

    /// The current read-ahead window (0 after a jump).
    pub fn window(&self) -> u64 {
        self.window
    }

    /// GETs of this handle in flight.
    pub fn in_flight(&self) -> usize {
        self.fetches.len()
    }

    /// A random read whose bytes are neither held, cached nor on their way: the state is reset
    /// as for any jump, and the bytes are left for the caller to fetch with [`Detached::fetch`]
    /// outside the handle's lock, so random reads through one handle from several threads run
    /// in parallel. `None`: read through [`Reader::read`].
    pub fn detach_random<S>(&mut self, ctx: &ReadCtx<S>, offset: u64, len: u32) -> Option<Detached> {
        if self.fresh() || offset >= self.size || len == 0 || offset.abs_diff(self.next_offset) <= SEQ_SLACK {
            return None;
        }
        let end = (offset + u64::from(len)).min(self.size);
        if (offset / BLOCK..end.div_ceil(BLOCK)).any(|b| self.covered(ctx, b)) {
            return None;
        }
        self.window = 0;
        self.ahead_end = 0;
        self.next_offset = end;
        for f in std::mem::take(&mut self.fetches).into_values() {
            f.task.abort();
        }
        Some(Detached {
            key: self.key.clone(),
            etag: self.etag.clone(),
            range: offset..end,
        })
    }

    /// Read up to `len` bytes at `offset`; fewer at the end of the file, none past it.
    pub async fn read<S: ObjectStore>(&mut self, ctx: &ReadCtx<S>, offset: u64, len: u32) -> FsResult<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(self.size);
        // Fetches the reader has passed (their blocks were read from the cache) are let go: a
        // finished task keeps its whole range alive until its handle is dropped.
        self.fetches.retain(|_, f| f.end > offset);
        let sequential = offset.abs_diff(self.next_offset) <= SEQ_SLACK;
        if sequential {
            self.window = if self.window == 0 {
                MIN_WINDOW
            } else {
                (self.window * 2).min(MAX_WINDOW)
            };
            self.next_offset = self.next_offset.max(end);
            let need_end = end.div_ceil(BLOCK) * BLOCK;
            self.schedule(ctx, floor(offset), need_end.min(self.size), true);
            let target = (end + self.window).min(self.size);
            if self.ahead_end < need_end {
                self.ahead_end = need_end.min(self.size);
            }
            if self.ahead_end < target && self.ahead_end < end + self.window / 2 {
                let from = self.ahead_end;
                self.ahead_end = self.schedule(ctx, from, target, false);
            }
        } else {
            self.window = 0;
            self.ahead_end = 0;
            self.next_offset = end;
            // Read-ahead of the old position is of no use now.
            self.fetches.retain(|s, f| {
                let keep = *s < end && f.end > offset;
                if !keep {
                    f.task.abort();
                }
                keep
            });
        }
        self.collect(ctx, offset, end).await
    }

    /// Put together `[offset, end)` from held data, the cache, fetches in flight, or (random
    /// reads) one GET of exactly what is missing.
    async fn collect<S: ObjectStore>(&mut self, ctx: &ReadCtx<S>, offset: u64, end: u64) -> FsResult<Bytes> {
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut pos = offset;
        while pos < end {
            if let Some((s, b)) = &self.current {
                let held_end = s + b.len() as u64;
                if *s <= pos && pos < held_end {
                    let to = end.min(held_end);
                    pieces.push(b.slice((pos - s) as usize..(to - s) as usize));
                    pos = to;
                    continue;
                }
            }
            if let Some(data) = self.block_id(pos / BLOCK).and_then(|id| ctx.cache.get(&id)) {
                if floor(pos) + data.len() as u64 > pos {
                    self.current = Some((floor(pos), data));
                    continue;
                }
            }
            if let Some(start) = self.fetch_covering(pos) {
                let fetch = self
                    .fetches
                    .remove(&start)
                    .ok_or_else(|| FsError::new(libc::EIO, "read-ahead bookkeeping lost a fetch"))?;
                let data = fetch
                    .task
                    .await
                    .map_err(|e| FsError::new(libc::EIO, format!("read of {} failed: {e}", self.key)))??;
                if data.len() as u64 <= pos - start {
                    break; // the object ended early: a short read
                }
                self.current = Some((start, data));
                continue;
            }
            // Not cached, not coming: fetch exactly the rest (charged while in flight).
            let _charge = ctx.cache_budget().force(end - pos);
            let data = ctx.store.get_range(&self.key, pos..end, self.etag.as_deref()).await?;
            if data.is_empty() {
                break;
            }
            self.current = Some((pos, data));
        }
        Ok(match pieces.len() {
            0 => Bytes::new(),
            1 => pieces.swap_remove(0),
            _ => {
                let mut out = BytesMut::with_capacity((pos - offset) as usize);
                for p in pieces {
                    out.extend_from_slice(&p);
                }
                out.freeze()
            }
        })
    }
}

/// A random read taken out of its handle's lock (see [`Reader::detach_random`]).
#[derive(Debug)]
pub struct Detached {
    key: Arc<str>,
    etag: Option<Arc<str>>,
    range: std::ops::Range<u64>,
}

impl Detached {
    /// One ranged GET of exactly the bytes asked for, charged to the budget while in flight.
    pub async fn fetch<S: ObjectStore>(self, ctx: &ReadCtx<S>) -> FsResult<Bytes> {
        let _charge = ctx.cache_budget().force(self.range.end - self.range.start);
        Ok(ctx.store.get_range(&self.key, self.range, self.etag.as_deref()).await?)
    }
}

impl<S> ReadCtx<S> {
    fn cache_budget(&self) -> &Arc<crate::budget::Budget> {
        self.cache.budget()
    }
}
