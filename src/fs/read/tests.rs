//! The unit tests of [`Reader`]: window growth, jumps, detached random reads, a small budget, a
//! replaced object.

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
