//! Unit tests of the write cache: entries across a reopen, damaged ones, recovery/, the queue.
use super::*;
use std::io::Write;

fn config(dir: &Path) -> WriteCacheConfig {
    WriteCacheConfig {
        dir: dir.to_path_buf(),
        max_size: 1 << 20,
        max_file: 1 << 16,
        max_files: 3,
        uploads: 2,
        drain_deadline: None,
    }
}

fn header(cache: &WriteCache, lineage: u64, key: &str, size: u64) -> entry::Header {
    entry::Header {
        lineage,
        seq: cache.next_id(),
        key: key.into(),
        content_type: None,
        metadata: HashMap::new(),
        size,
    }
}

fn contents(bytes: &[u8]) -> std::fs::File {
    let mut f = tempfile::tempfile().expect("tempfile");
    f.write_all(bytes).expect("write");
    f
}

#[test]
fn a_reopened_cache_gives_the_latest_entry_of_each_file_and_sets_damaged_ones_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, left) = WriteCache::open(config(dir.path()), "http://h", "b").expect("open");
    assert!(left.is_empty());
    let a = cache.next_id();
    let b = cache.next_id();
    let a1 = cache.add(&header(&cache, a, "a", 3), &contents(b"one")).expect("add");
    let a2 = cache.add(&header(&cache, a, "a2", 3), &contents(b"two")).expect("add");
    let b1 = cache.add(&header(&cache, b, "b", 1), &contents(b"b")).expect("add");
    assert!(!cache.takes(1), "at most three files");
    assert!(a2.seq > a1.seq);
    // A close cut off by a crash.
    let torn = cache.dir().join(format!("{:020}.wc", cache.next_id()));
    std::fs::write(&torn, b"CMWC1\n\x01").expect("torn");
    drop(cache);
    let (cache, left) = WriteCache::open(config(dir.path()), "http://h", "b").expect("reopen");
    let keys: Vec<_> = left.iter().map(|l| l.header.key.as_str()).collect();
    assert_eq!(keys, ["a2", "b"], "the latest of each lineage, oldest first");
    assert_eq!(cache.held().0, 2);
    assert!(!torn.exists() && cache.recovery.read_dir().expect("recovery").count() == 1);
    assert!(cache.next_id() > b1.seq);
    let dst = cache.to_recovery(&left[0].pending, "x/../d/a2").expect("to recovery");
    assert_eq!(dst, cache.recovery.join("x/d/a2"));
    assert_eq!(std::fs::read(&dst).expect("recovered"), b"two");
    let again = cache
        .add(&header(&cache, a, "x/d/a2", 3), &contents(b"2nd"))
        .expect("add");
    let dst2 = cache.to_recovery(&again, "x/d/a2").expect("to recovery");
    assert_eq!(dst2, cache.recovery.join("x/d/a2.~1"));
    cache.remove(&left[1].pending);
    cache.sync_removals();
    assert_eq!(cache.held(), (0, 0));
    assert_eq!(
        std::fs::read_dir(cache.dir()).expect("dir").count(),
        1,
        "only recovery/"
    );
}

#[tokio::test]
async fn the_queue_gives_files_now_or_after_their_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, _) = WriteCache::open(config(dir.path()), "e", "b").expect("open");
    cache.queue_later(1, Duration::from_millis(80));
    cache.queue(2);
    cache.queue(3);
    let start = Instant::now();
    assert_eq!(cache.next().await, 2);
    assert_eq!(cache.next().await, 3);
    assert_eq!(cache.next().await, 1);
    assert!(start.elapsed() >= Duration::from_millis(70));
}
