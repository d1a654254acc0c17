//! `BlockCache`: object data in fixed-size blocks, keyed by object key + ETag + block index, in
//! memory (LRU by bytes, charged to the memory [`Budget`]) and optionally on disk.
//!
//! - **A changed object is never served from old blocks**: the ETag is part of the key, and the
//!   ETag comes from the `open` that started the read (which GETs with `If-Match` on it).
//! - **Memory**: every cached block holds a [`Charge`] of the budget; it is the first thing given
//!   up under pressure (the cache is the budget's reclaimer), least recently used first.
//! - **Disk** (`--cache-dir`, hard cap `--max-cache-size`): blocks are written through to files
//!   under `<dir>/cosmount-blocks/` (emptied when the mount starts), each with a header naming its key,
//!   ETag and index and a CRC32 of its bytes. A block read back is checked against both: a
//!   mismatch (a torn write, a flipped bit, a hash collision of names) deletes the file and counts
//!   as a miss, so bad bytes are refetched, never served. Room is made (least recently used
//!   first) before a file is written, so the files never exceed the cap. That tier is `disk.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use lru::LruCache;

use crate::budget::{Budget, Charge};

mod disk;
pub use disk::DiskCache;

/// Size of a cache block.
pub const BLOCK: u64 = 1 << 20;

/// Which block of which object version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockId {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

struct Block {
    data: Bytes,
    _charge: Charge,
}

/// Hit and miss counts (memory and disk hits together).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub disk_hits: AtomicU64,
    pub misses: AtomicU64,
}

/// The block cache of a mount.
pub struct BlockCache {
    mem: Mutex<LruCache<BlockId, Block>>,
    mem_bytes: AtomicU64,
    budget: Arc<Budget>,
    disk: Option<DiskCache>,
    pub stats: CacheStats,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlockCache {
    /// A cache charging `budget`, with an optional disk tier; registers itself as the budget's
    /// reclaimer.
    pub fn new(budget: Arc<Budget>, disk: Option<DiskCache>) -> Arc<Self> {
        let cache = Arc::new(Self {
            mem: Mutex::new(LruCache::unbounded()),
            mem_bytes: AtomicU64::new(0),
            budget: budget.clone(),
            disk,
            stats: CacheStats::default(),
        });
        let weak = Arc::downgrade(&cache);
        budget.add_reclaimer(Box::new(move |want| weak.upgrade().map_or(0, |c| c.evict(want))));
        cache
    }

    /// Bytes held in memory.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_bytes.load(Ordering::Acquire)
    }

    /// The memory budget the cache charges.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Whether blocks are also written to disk (then inserting is blocking file I/O).
    pub fn has_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Bytes held on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskCache::used)
    }

    /// Whether the block is cached (memory or disk), without touching its recency.
    pub fn contains(&self, id: &BlockId) -> bool {
        lock(&self.mem).contains(id) || self.disk.as_ref().is_some_and(|d| d.contains(id))
    }

    /// The block, from memory or else from disk (then kept in memory too).
    pub fn get(&self, id: &BlockId) -> Option<Bytes> {
        if let Some(b) = lock(&self.mem).get(id) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_access(true);
            return Some(b.data.clone());
        }
        if let Some(data) = self.disk.as_ref().and_then(|d| d.get(id)) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_access(true);
            self.insert_mem(id.clone(), data.clone());
            return Some(data);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_access(false);
        None
    }

    fn insert_mem(&self, id: BlockId, data: Bytes) {
        let len = data.len() as u64;
        let mut mem = lock(&self.mem);
        if mem.contains(&id) {
            return;
        }
        // Make room by evicting older blocks; if the budget is taken by others, don't cache.
        let charge = loop {
            if let Some(c) = self.budget.try_charge_now(len) {
                break c;
            }
            match mem.pop_lru() {
                Some((_, old)) => {
                    self.mem_bytes.fetch_sub(old.data.len() as u64, Ordering::AcqRel);
                }
                None => return,
            }
        };
        self.mem_bytes.fetch_add(len, Ordering::AcqRel);
        mem.put(id, Block { data, _charge: charge });
    }

    /// Cache the bytes of `key` (version `etag`) that start at block-aligned `start`: whole
    /// blocks, plus the last one if the data ends at the end of the object (`size`).
    pub fn insert_range(&self, key: &Arc<str>, etag: &Arc<str>, start: u64, data: &Bytes, size: u64) {
        if !start.is_multiple_of(BLOCK) {
            return;
        }
        let mut off = 0u64;
        let len = data.len() as u64;
        while off < len {
            let end = (off + BLOCK).min(len);
            if end - off < BLOCK && start + end != size {
                break;
            }
            let id = BlockId {
                key: key.clone(),
                etag: etag.clone(),
                index: (start + off) / BLOCK,
            };
            let block = data.slice(off as usize..end as usize);
            if let Some(d) = &self.disk {
                d.put(&id, &block);
            }
            self.insert_mem(id, block);
            off = end;
        }
    }

    /// Evict least recently used blocks from memory until `want` bytes are freed (or none are
    /// left); returns the bytes freed.
    pub fn evict(&self, want: u64) -> u64 {
        let mut freed = 0;
        let mut mem = lock(&self.mem);
        while freed < want {
            match mem.pop_lru() {
                Some((_, b)) => {
                    let n = b.data.len() as u64;
                    self.mem_bytes.fetch_sub(n, Ordering::AcqRel);
                    freed += n;
                }
                None => break,
            }
        }
        freed
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) fn id(key: &str, etag: &str, index: u64) -> BlockId {
        BlockId {
            key: key.into(),
            etag: etag.into(),
            index,
        }
    }

    fn block(fill: u8, n: usize) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn evicts_by_bytes_within_the_budget() {
        let budget = Budget::new(3 * BLOCK);
        let cache = BlockCache::new(budget.clone(), None);
        let (k, e): (Arc<str>, Arc<str>) = ("k".into(), "e1".into());
        let data = Bytes::from(vec![7u8; 5 * BLOCK as usize]);
        cache.insert_range(&k, &e, 0, &data, 5 * BLOCK);
        // Five blocks offered, three fit: the two oldest were evicted.
        assert_eq!(cache.mem_bytes(), 3 * BLOCK);
        assert_eq!(budget.used(), 3 * BLOCK);
        assert!(cache.get(&id("k", "e1", 0)).is_none());
        assert!(cache.get(&id("k", "e1", 1)).is_none());
        assert_eq!(cache.get(&id("k", "e1", 4)).expect("newest kept").len(), BLOCK as usize);
        // Small blocks count by their size.
        cache.insert_mem(id("s", "e", 0), block(1, 10));
        assert_eq!(cache.mem_bytes(), 2 * BLOCK + 10);
        assert_eq!(budget.used(), cache.mem_bytes());
    }

    #[test]
    fn the_etag_is_part_of_the_key() {
        let cache = BlockCache::new(Budget::new(8 * BLOCK), None);
        let (k, old, new): (Arc<str>, Arc<str>, Arc<str>) = ("k".into(), "old".into(), "new".into());
        cache.insert_range(&k, &old, 0, &block(1, 100), 100);
        assert!(cache.get(&id("k", "new", 0)).is_none());
        assert_eq!(cache.get(&id("k", "old", 0)).expect("old version")[0], 1);
        cache.insert_range(&k, &new, 0, &block(2, 100), 100);
        assert_eq!(cache.get(&id("k", "new", 0)).expect("new version")[0], 2);
        // A partial last block is cached only when it really ends the object.
        cache.insert_range(&k, &new, BLOCK, &block(3, 100), 10 * BLOCK);
        assert!(cache.get(&id("k", "new", 1)).is_none());
    }

    #[test]
    fn writers_reclaim_cached_blocks() {
        let budget = Budget::new(4 * BLOCK);
        let cache = BlockCache::new(budget.clone(), None);
        let (k, e): (Arc<str>, Arc<str>) = ("k".into(), "e".into());
        cache.insert_range(&k, &e, 0, &Bytes::from(vec![0u8; 4 * BLOCK as usize]), 4 * BLOCK);
        assert_eq!(budget.used(), 4 * BLOCK);
        let c = budget.try_charge(2 * BLOCK).expect("cache gives way");
        assert_eq!(cache.mem_bytes(), 2 * BLOCK);
        assert_eq!(budget.used(), 4 * BLOCK);
        drop(c);
    }

    #[test]
    fn the_budget_holds_under_concurrent_use() {
        let budget = Budget::new(6 * BLOCK);
        let cache = BlockCache::new(budget.clone(), None);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (cache, budget) = (&cache, &budget);
                s.spawn(move || {
                    let e: Arc<str> = "e".into();
                    for i in 0..50u64 {
                        let k: Arc<str> = format!("k{t}-{i}").into();
                        cache.insert_range(&k, &e, 0, &Bytes::from(vec![t as u8; 2 * BLOCK as usize]), 2 * BLOCK);
                        let _ = cache.get(&id(&k, "e", 1));
                        if let Some(c) = budget.try_charge(BLOCK) {
                            assert!(budget.used() <= budget.limit());
                            drop(c);
                        }
                        assert!(budget.used() <= budget.limit(), "over budget");
                    }
                });
            }
        });
        assert!(budget.peak() <= 6 * BLOCK, "peak {} over the limit", budget.peak());
        assert_eq!(budget.used(), cache.mem_bytes());
    }
}
