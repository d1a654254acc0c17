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

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::blocks::{BlockCache, BlockId, BLOCK};
use crate::error::{FsError, FsResult};
use crate::store::ObjectStore;

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

struct Fetch {
    end: u64,
    task: JoinHandle<FsResult<Bytes>>,
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

    fn block_id(&self, index: u64) -> Option<BlockId> {
        self.etag.as_ref().map(|etag| BlockId {
            key: self.key.clone(),
            etag: etag.clone(),
            index,
        })
    }

    fn fetch_covering(&self, pos: u64) -> Option<u64> {
        self.fetches
            .range(..=pos)
            .next_back()
            .filter(|(_, f)| f.end > pos)
            .map(|(s, _)| *s)
    }

    fn current_covers(&self, from: u64, to: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|(s, b)| *s <= from && to <= s + b.len() as u64)
    }

    /// Whether block `b` is cached, in flight or held.
    fn covered<S>(&self, ctx: &ReadCtx<S>, b: u64) -> bool {
        let start = b * BLOCK;
        let end = (start + BLOCK).min(self.size);
        self.current_covers(start, end)
            || self.fetch_covering(start).is_some()
            || self.block_id(b).is_some_and(|id| ctx.cache.contains(&id))
    }

    fn spawn<S: ObjectStore>(&mut self, ctx: &ReadCtx<S>, start: u64, end: u64, charge: crate::budget::Charge) {
        let (store, cache) = (ctx.store.clone(), ctx.cache.clone());
        let (key, etag, size) = (self.key.clone(), self.etag.clone(), self.size);
        let task = tokio::spawn(async move {
            let _charge = charge;
            let data = store.get_range(&key, start..end, etag.as_deref()).await?;
            if let Some(etag) = etag {
                let d = data.clone();
                if cache.has_disk() {
                    tokio::task::spawn_blocking(move || cache.insert_range(&key, &etag, start, &d, size));
                } else {
                    cache.insert_range(&key, &etag, start, &d, size);
                }
            }
            Ok(data)
        });
        self.fetches.insert(start, Fetch { end, task });
    }

    /// Fetch the missing blocks of `[from, to)` (block-aligned `from`), in ranges of at most
    /// [`FETCH_MAX`]. `needed`: charged unconditionally; otherwise stops when the budget refuses.
    fn schedule<S: ObjectStore>(&mut self, ctx: &ReadCtx<S>, from: u64, to: u64, needed: bool) -> u64 {
        let budget = ctx.cache_budget();
        let mut b = from / BLOCK;
        let last = to.div_ceil(BLOCK);
        while b < last {
            if self.covered(ctx, b) {
                b += 1;
                continue;
            }
            let start = b * BLOCK;
            let mut end = start;
            while b < last && end - start < FETCH_MAX && !self.covered(ctx, b) {
                b += 1;
                end = (b * BLOCK).min(self.size);
            }
            let charge = if needed {
                budget.force(end - start)
            } else {
                match budget.try_charge(end - start) {
                    Some(c) => c,
                    None => {
                        self.window = (self.window / 2).max(MIN_WINDOW);
                        return start;
                    }
                }
            };
            self.spawn(ctx, start, end, charge);
        }
        to
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::Ordering;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    async fn setup(n: usize, budget: u64) -> (ReadCtx<MemoryStore>, Vec<u8>, Reader) {
        let data = body(n);
        let store = Arc::new(MemoryStore::new());
        store.insert("k", data.clone());
        let etag = store.head_object("k").await.expect("head").etag;
        let cache = BlockCache::new(Budget::new(budget), None);
        let r = Reader::new("k".into(), etag, n as u64);
        (ReadCtx { store, cache }, data, r)
    }

    async fn read_all(r: &mut Reader, ctx: &ReadCtx<MemoryStore>, chunk: u32) -> Vec<u8> {
        let mut got = Vec::new();
        let mut off = 0u64;
        loop {
            let c = r.read(ctx, off, chunk).await.expect("read");
            if c.is_empty() {
                return got;
            }
            off += c.len() as u64;
            got.extend_from_slice(&c);
        }
    }

    #[tokio::test]
    async fn sequential_reads_grow_the_window_and_fetch_in_parallel() {
        let (ctx, data, mut r) = setup(40 * 1024 * 1024 + 17, 512 << 20).await;
        let first = r.read(&ctx, 0, 128 * 1024).await.expect("read");
        assert_eq!(&first[..], &data[..128 * 1024]);
        assert_eq!(r.window(), MIN_WINDOW);
        let mut off = first.len() as u64;
        for _ in 0..6 {
            off += r.read(&ctx, off, 128 * 1024).await.expect("read").len() as u64;
        }
        assert_eq!(r.window(), MAX_WINDOW);
        assert!(
            r.in_flight() >= 2,
            "read-ahead in parallel: {} in flight",
            r.in_flight()
        );
        // The rest of the file: few, large GETs.
        let mut rest = Vec::new();
        loop {
            let c = r.read(&ctx, off, 128 * 1024).await.expect("read");
            if c.is_empty() {
                break;
            }
            off += c.len() as u64;
            rest.extend_from_slice(&c);
        }
        assert_eq!(&rest[..], &data[7 * 128 * 1024..]);
        // Nothing fetched is held behind the reader (a finished fetch pins its whole range).
        assert!(
            r.fetches.values().all(|f| f.end > off - 128 * 1024),
            "fetches behind the reader kept"
        );
        let gets = ctx.store.counts.get.load(Ordering::Relaxed);
        assert!(gets <= 12, "a 40 MiB sequential read cost {gets} GETs");
        // A second handle reads it all from the cache.
        let mut r2 = Reader::new("k".into(), r.etag.as_deref().map(str::to_string), r.size);
        assert_eq!(read_all(&mut r2, &ctx, 128 * 1024).await, data);
        assert_eq!(
            ctx.store.counts.get.load(Ordering::Relaxed),
            gets,
            "second read: no GET"
        );
    }

    #[tokio::test]
    async fn random_reads_are_detached_from_the_handle_only_when_nothing_covers_them() {
        let (ctx, data, mut r) = setup(20 * 1024 * 1024, 512 << 20).await;
        assert!(
            r.detach_random(&ctx, 9 << 20, 65536).is_none(),
            "a fresh reader reads in order"
        );
        for i in 0..4u64 {
            r.read(&ctx, i * 128 * 1024, 128 * 1024).await.expect("read");
        }
        assert!(r.in_flight() > 0 || r.window() > 0);
        // Sequential, or already cached: through the handle.
        assert!(r.detach_random(&ctx, 4 * 128 * 1024, 4096).is_none());
        assert!(
            r.detach_random(&ctx, 3 << 20, 4096).is_none(),
            "within the sequential slack"
        );
        // Far away and not cached: one GET of exactly that, with the read-ahead cancelled.
        let before = ctx.store.counts.get.load(Ordering::Relaxed);
        let d = r.detach_random(&ctx, (12 << 20) + 7, 65536).expect("detached");
        assert_eq!((r.window(), r.in_flight()), (0, 0));
        let got = d.fetch(&ctx).await.expect("fetch");
        assert_eq!(&got[..], &data[(12 << 20) + 7..(12 << 20) + 7 + 65536]);
        assert_eq!(ctx.store.counts.get.load(Ordering::Relaxed), before + 1);
        // A block already in the cache is read through the handle (no GET).
        assert!(r.detach_random(&ctx, 100_000, 4096).is_none());
        let back = r.read(&ctx, 100_000, 4096).await.expect("read");
        assert_eq!(&back[..], &data[100_000..104_096]);
        // Clipped at the end of the object.
        let n = data.len() as u64;
        let d = r.detach_random(&ctx, n - 3, 100).expect("detached");
        assert_eq!(d.fetch(&ctx).await.expect("fetch").len(), 3);
        assert!(r.detach_random(&ctx, n + 5, 100).is_none());
    }

    #[tokio::test]
    async fn a_jump_resets_the_window_and_fetches_only_what_is_asked() {
        let (ctx, data, mut r) = setup(20 * 1024 * 1024, 512 << 20).await;
        for i in 0..4u64 {
            r.read(&ctx, i * 128 * 1024, 128 * 1024).await.expect("read");
        }
        assert!(r.window() > MIN_WINDOW);
        let before = ctx.store.counts.get.load(Ordering::Relaxed);
        let far = 15 * 1024 * 1024 + 4096;
        let got = r.read(&ctx, far, 64 * 1024).await.expect("read");
        assert_eq!(&got[..], &data[far as usize..far as usize + 64 * 1024]);
        assert_eq!(r.window(), 0);
        assert_eq!(r.in_flight(), 0, "read-ahead of the old position cancelled");
        assert_eq!(ctx.store.counts.get.load(Ordering::Relaxed), before + 1);
        assert_eq!(
            r.current.as_ref().map(|(_, b)| b.len()),
            Some(64 * 1024),
            "no more than asked"
        );
        // A backward seek into what was read before comes from the cache: no GET.
        let before = ctx.store.counts.get.load(Ordering::Relaxed);
        let back = r.read(&ctx, 100_000, 4096).await.expect("read");
        assert_eq!(&back[..], &data[100_000..104_096]);
        assert_eq!(ctx.store.counts.get.load(Ordering::Relaxed), before);
        // Random reads far apart: one small GET each.
        let before = ctx.store.counts.get.load(Ordering::Relaxed);
        for off in [9u64 << 20, 3 << 20, 17 << 20, 6 << 20] {
            let got = r.read(&ctx, off + 5, 65536).await.expect("read");
            assert_eq!(&got[..], &data[off as usize + 5..off as usize + 5 + 65536]);
        }
        assert_eq!(ctx.store.counts.get.load(Ordering::Relaxed), before + 4);
        // At and past EOF.
        let n = data.len() as u64;
        assert_eq!(r.read(&ctx, n - 3, 100).await.expect("read").len(), 3);
        assert!(r.read(&ctx, n + 5, 100).await.expect("read").is_empty());
    }

    #[tokio::test]
    async fn read_ahead_shrinks_under_a_small_budget_and_reads_stay_correct() {
        // A budget of 4 MiB: read-ahead can't take 64 MiB, yet every byte comes back right.
        let (ctx, data, mut r) = setup(30 * 1024 * 1024 + 5, 4 << 20).await;
        assert_eq!(read_all(&mut r, &ctx, 128 * 1024).await, data);
        let budget = ctx.cache.budget();
        assert!(
            budget.peak() <= budget.limit() + 2 * BLOCK,
            "peak {} for a {} budget",
            budget.peak(),
            budget.limit()
        );
        // Reads spanning blocks, at odd offsets and sizes.
        let got = r.read(&ctx, BLOCK - 10, 300).await.expect("read");
        assert_eq!(&got[..], &data[BLOCK as usize - 10..BLOCK as usize + 290]);
    }

    #[tokio::test]
    async fn a_replaced_object_fails_instead_of_mixing_bytes() {
        let (ctx, _, mut r) = setup(100, 1 << 20).await;
        ctx.store.insert("k", body(100));
        assert_eq!(r.read(&ctx, 0, 10).await.unwrap_err().errno, libc::ESTALE);
    }
}
