//! `Reader`: per-handle reads with ranged GETs and a simple sequential read-ahead.
//!
//! This is the seam where the block cache of the performance work will plug in. Today:
//! - a read inside the buffer is served from memory;
//! - a read that continues the previous one is sequential: the fetch window doubles, from
//!   [`MIN_WINDOW`] up to [`MAX_WINDOW`], so a `cat` of a large file makes few requests;
//! - any other read (a jump) fetches only the bytes asked for and resets the window, so random
//!   4 KiB reads never pull megabytes;
//! - every GET carries `If-Match` with the ETag seen at open: if another client replaced the
//!   object meanwhile the read fails with `ESTALE` rather than mixing old and new bytes.

use bytes::Bytes;

use crate::error::FsResult;
use crate::store::ObjectStore;

/// First read-ahead window.
pub const MIN_WINDOW: u64 = 256 * 1024;
/// Largest read-ahead window.
pub const MAX_WINDOW: u64 = 8 * 1024 * 1024;

/// Read state of one open file.
#[derive(Debug)]
pub struct Reader {
    key: String,
    etag: Option<String>,
    size: u64,
    buf_start: u64,
    buf: Bytes,
    next_offset: u64,
    window: u64,
}

impl Reader {
    /// A reader of `key` (`size` bytes, `etag` at open time).
    pub fn new(key: String, etag: Option<String>, size: u64) -> Self {
        Self {
            key,
            etag,
            size,
            buf_start: 0,
            buf: Bytes::new(),
            next_offset: 0,
            window: MIN_WINDOW / 2,
        }
    }

    /// Read up to `len` bytes at `offset`; fewer at the end of the file, none past it.
    pub async fn read<S: ObjectStore>(&mut self, store: &S, offset: u64, len: u32) -> FsResult<Bytes> {
        if offset >= self.size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = (offset + u64::from(len)).min(self.size);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset >= self.buf_start && end <= buf_end {
            self.next_offset = end;
            let from = (offset - self.buf_start) as usize;
            return Ok(self.buf.slice(from..from + (end - offset) as usize));
        }
        let fetch_len = if offset == self.next_offset {
            self.window = (self.window * 2).clamp(MIN_WINDOW, MAX_WINDOW);
            self.window.max(end - offset)
        } else {
            self.window = MIN_WINDOW / 2;
            end - offset
        };
        let fetch_end = (offset + fetch_len).min(self.size);
        let data = store
            .get_range(&self.key, offset..fetch_end, self.etag.as_deref())
            .await?;
        let n = (data.len() as u64).min(end - offset) as usize;
        let out = data.slice(..n);
        self.buf_start = offset;
        self.buf = data;
        self.next_offset = offset + n as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::Ordering;

    fn body(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn sequential_reads_grow_the_window_and_random_reads_fetch_little() {
        let data = body(3 * 1024 * 1024 + 17);
        let store = MemoryStore::new();
        store.insert("k", data.clone());
        let etag = store.head_object("k").await.expect("head").etag;
        let mut r = Reader::new("k".into(), etag, data.len() as u64);
        let mut got = Vec::new();
        let mut off = 0u64;
        loop {
            let chunk = r.read(&store, off, 128 * 1024).await.expect("read");
            if chunk.is_empty() {
                break;
            }
            off += chunk.len() as u64;
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data);
        let gets = store.counts.get.load(Ordering::Relaxed);
        assert!(gets <= 6, "25 sequential reads cost {gets} GETs");
        // A jump fetches just the asked range.
        let before = store.counts.get.load(Ordering::Relaxed);
        let chunk = r.read(&store, 1000, 4096).await.expect("read");
        assert_eq!(&chunk[..], &data[1000..5096]);
        assert_eq!(r.buf.len(), 4096);
        assert_eq!(store.counts.get.load(Ordering::Relaxed), before + 1);
        // At and past EOF.
        assert_eq!(r.read(&store, data.len() as u64 - 3, 100).await.expect("read").len(), 3);
        assert!(r
            .read(&store, data.len() as u64 + 5, 100)
            .await
            .expect("read")
            .is_empty());
    }

    #[tokio::test]
    async fn a_replaced_object_fails_instead_of_mixing_bytes() {
        let store = MemoryStore::new();
        store.insert("k", body(100));
        let etag = store.head_object("k").await.expect("head").etag;
        let mut r = Reader::new("k".into(), etag, 100);
        store.insert("k", body(100));
        assert_eq!(r.read(&store, 0, 10).await.unwrap_err().errno, libc::ESTALE);
    }
}
