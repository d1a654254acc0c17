//! The on-disk tier of the block cache (`--cache-dir`, hard cap `--max-cache-size`): block files
//! under `<dir>/cosmount-blocks/` (emptied when the mount starts), each with a header naming its
//! key, ETag and index and a CRC32 of its bytes.
//!
//! - A block read back is checked against both: a mismatch (a torn write, a flipped bit, a hash
//!   collision of names) deletes the file and counts as a miss, so bad bytes are refetched, never
//!   served.
//! - Room is made (least recently used first) and reserved before a file is written, so the files
//!   never exceed the cap, also under concurrent writers.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;
use tracing::{debug, warn};

use super::{lock, BlockId};

/// The on-disk tier: block files under a directory, at most `cap` bytes of them.
pub struct DiskCache {
    dir: PathBuf,
    cap: u64,
    index: Mutex<DiskIndex>,
}

struct DiskIndex {
    lru: LruCache<BlockId, u64>,
    used: u64,
}

const MAGIC: &[u8; 4] = b"CMB1";

impl DiskCache {
    /// A disk cache in `<dir>/cosmount-blocks` holding at most `cap` bytes of block files; whatever an
    /// earlier mount left there is removed.
    pub fn create(dir: &Path, cap: u64) -> std::io::Result<Self> {
        let dir = dir.join("cosmount-blocks");
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            cap,
            index: Mutex::new(DiskIndex {
                lru: LruCache::unbounded(),
                used: 0,
            }),
        })
    }

    /// Bytes of block files on disk.
    pub fn used(&self) -> u64 {
        lock(&self.index).used
    }

    fn path(&self, id: &BlockId) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        self.dir.join(format!("{:016x}-{}.blk", h.finish(), id.index))
    }

    fn header(id: &BlockId, data: &[u8]) -> Vec<u8> {
        let mut h = Vec::with_capacity(32 + id.key.len() + id.etag.len());
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        h.extend_from_slice(&(data.len() as u64).to_le_bytes());
        h.extend_from_slice(&id.index.to_le_bytes());
        h.extend_from_slice(&(id.key.len() as u32).to_le_bytes());
        h.extend_from_slice(id.key.as_bytes());
        h.extend_from_slice(&(id.etag.len() as u32).to_le_bytes());
        h.extend_from_slice(id.etag.as_bytes());
        h
    }

    pub(super) fn contains(&self, id: &BlockId) -> bool {
        lock(&self.index).lru.contains(id)
    }

    /// Write a block (making room first); a failure only means the block is not on disk.
    pub(super) fn put(&self, id: &BlockId, data: &[u8]) {
        let header = Self::header(id, data);
        let size = (header.len() + data.len()) as u64;
        if size > self.cap {
            return;
        }
        let path = self.path(id);
        {
            let mut ix = lock(&self.index);
            if ix.lru.contains(id) {
                return;
            }
            while ix.used + size > self.cap {
                match ix.lru.pop_lru() {
                    Some((old, n)) => {
                        ix.used -= n;
                        let _ = fs::remove_file(self.path(&old));
                    }
                    None => break,
                }
            }
            // Reserve the room before writing, so concurrent writers cannot pass the cap.
            ix.used += size;
            ix.lru.put(id.clone(), size);
        }
        let written = fs::File::create(&path).and_then(|mut f| {
            f.write_all(&header)?;
            f.write_all(data)
        });
        if let Err(e) = written {
            debug!(path = %path.display(), "cannot write a cache block: {e}");
            let _ = fs::remove_file(&path);
            let mut ix = lock(&self.index);
            if ix.lru.pop(id).is_some() {
                ix.used -= size;
            }
        }
    }

    /// Read a block back, checking its header and checksum.
    pub(super) fn get(&self, id: &BlockId) -> Option<Bytes> {
        // Touch its recency; unknown blocks are misses without a file lookup.
        lock(&self.index).lru.get(id)?;
        let path = self.path(id);
        let raw = fs::read(&path).ok();
        match raw.as_deref().and_then(|r| Self::check(id, r)) {
            Some(data) => Some(Bytes::copy_from_slice(data)),
            None => {
                warn!(key = &*id.key, block = id.index, path = %path.display(), "a disk cache block failed its check; it is dropped and fetched again");
                let _ = fs::remove_file(&path);
                let mut ix = lock(&self.index);
                if let Some(n) = ix.lru.pop(id) {
                    ix.used -= n;
                }
                None
            }
        }
    }

    fn check<'a>(id: &BlockId, raw: &'a [u8]) -> Option<&'a [u8]> {
        let u32_at = |i: usize| {
            raw.get(i..i + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |i: usize| {
            raw.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        if raw.get(..4)? != MAGIC {
            return None;
        }
        let crc = u32_at(4)?;
        let len = u64_at(8)? as usize;
        if u64_at(16)? != id.index {
            return None;
        }
        let klen = u32_at(24)? as usize;
        let key = raw.get(28..28 + klen)?;
        let elen = u32_at(28 + klen)? as usize;
        let etag = raw.get(32 + klen..32 + klen + elen)?;
        if key != id.key.as_bytes() || etag != id.etag.as_bytes() {
            return None;
        }
        let data = raw.get(32 + klen + elen..)?;
        (data.len() == len && crc32fast::hash(data) == crc).then_some(data)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::super::tests::id;
    use super::super::{BlockCache, BLOCK};
    use super::*;
    use crate::budget::Budget;

    #[test]
    fn disk_blocks_are_capped_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = DiskCache::create(dir.path(), 3 * BLOCK + 1000).expect("disk cache");
        let blocks = dir.path().join("cosmount-blocks");
        let cache = BlockCache::new(Budget::new(16 * BLOCK), Some(disk));
        let (k, e): (Arc<str>, Arc<str>) = ("dir/k".into(), "e".into());
        let data: Vec<u8> = (0..5 * BLOCK).map(|i| (i % 251) as u8).collect();
        cache.insert_range(&k, &e, 0, &Bytes::from(data.clone()), 5 * BLOCK);
        let on_disk: u64 = fs::read_dir(&blocks)
            .expect("ls")
            .map(|f| f.expect("entry").metadata().expect("stat").len())
            .sum();
        assert!(on_disk <= 3 * BLOCK + 1000, "{on_disk} bytes on disk");
        assert_eq!(on_disk, cache.disk_bytes());
        // Memory emptied: blocks come back from disk, byte for byte.
        cache.evict(u64::MAX);
        let b4 = cache.get(&id("dir/k", "e", 4)).expect("from disk");
        assert_eq!(&b4[..], &data[4 * BLOCK as usize..]);
        assert_eq!(cache.stats.disk_hits.load(Ordering::Relaxed), 1);
        // A corrupted file is refused and dropped.
        cache.evict(u64::MAX);
        let d = cache.disk.as_ref().expect("disk");
        let p = d.path(&id("dir/k", "e", 3));
        let mut raw = fs::read(&p).expect("block file");
        let last = raw.len() - 1;
        raw[last] ^= 0xff;
        fs::write(&p, raw).expect("corrupt");
        assert!(cache.get(&id("dir/k", "e", 3)).is_none());
        assert!(!p.exists());
        // A restart empties the directory.
        drop(cache);
        let _again = DiskCache::create(dir.path(), BLOCK).expect("again");
        assert_eq!(fs::read_dir(&blocks).expect("ls").count(), 0);
    }
}
