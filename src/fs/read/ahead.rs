//! Read-ahead bookkeeping of a [`Reader`]: which blocks are held, cached or on their way, and
//! the ranged GETs that fetch the missing ones (each a task that fills the block cache), charged
//! to the memory budget: the blocks a read needs now unconditionally, read-ahead only while the
//! budget agrees (refused, the window halves).

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::{ReadCtx, Reader, FETCH_MAX, MIN_WINDOW};
use crate::error::FsResult;
use crate::fs::blocks::{BlockId, BLOCK};
use crate::store::ObjectStore;

/// One ranged GET in flight (or done, not yet taken), starting at its key in `Reader::fetches`.
pub(super) struct Fetch {
    pub(super) end: u64,
    pub(super) task: JoinHandle<FsResult<Bytes>>,
}

impl Reader {
    pub(super) fn block_id(&self, index: u64) -> Option<BlockId> {
        self.etag.as_ref().map(|etag| BlockId {
            key: self.key.clone(),
            etag: etag.clone(),
            index,
        })
    }

    pub(super) fn fetch_covering(&self, pos: u64) -> Option<u64> {
        self.fetches
            .range(..=pos)
            .next_back()
            .filter(|(_, f)| f.end > pos)
            .map(|(s, _)| *s)
    }

    pub(super) fn current_covers(&self, from: u64, to: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|(s, b)| *s <= from && to <= s + b.len() as u64)
    }

    /// Whether block `b` is cached, in flight or held.
    pub(super) fn covered<S>(&self, ctx: &ReadCtx<S>, b: u64) -> bool {
        let start = b * BLOCK;
        let end = (start + BLOCK).min(self.size);
        self.current_covers(start, end)
            || self.fetch_covering(start).is_some()
            || self.block_id(b).is_some_and(|id| ctx.cache.contains(&id))
    }

    pub(super) fn spawn<S: ObjectStore>(
        &mut self,
        ctx: &ReadCtx<S>,
        start: u64,
        end: u64,
        charge: crate::budget::Charge,
    ) {
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
    pub(super) fn schedule<S: ObjectStore>(&mut self, ctx: &ReadCtx<S>, from: u64, to: u64, needed: bool) -> u64 {
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
}
