//! Real-mount tests of the caches: the kernel page cache kept or dropped by ETag, the block
//! cache on disk (capped, checked), the memory budget, and the listing cache — each checked
//! against what the bucket holds, through the S3 API.

mod common;

use std::time::Duration;

use common::proxy::FaultProxy;
use common::*;

fn log_count(m: &Mount, needle: &str) -> usize {
    std::fs::read_to_string(&m.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn an_out_of_band_overwrite_is_seen_after_the_ttl_with_no_stale_bytes() {
    let b = bucket("oob");
    let a = pattern(300_000, 1);
    put_all(&b, vec![("f.bin".into(), a.clone())]);
    let m = Mount::new(&b, &["--metadata-ttl", "1"]);
    assert_eq!(std::fs::read(m.p("f.bin")).expect("read"), a);
    // Read again: the kernel keeps its pages (same ETag), the bytes are still right.
    assert_eq!(std::fs::read(m.p("f.bin")).expect("read"), a);
    // Another client overwrites it with different bytes of the same length...
    let same_len = pattern(300_000, 9);
    assert_ne!(same_len, a);
    put_all(&b, vec![("f.bin".into(), same_len.clone())]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::read(m.p("f.bin")).expect("read"),
        same_len,
        "stale bytes after the TTL"
    );
    // ...and with a different length.
    let shorter = pattern(123_457, 3);
    put_all(&b, vec![("f.bin".into(), shorter.clone())]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(std::fs::read(m.p("f.bin")).expect("read"), shorter);
    assert_eq!(get(&b, "f.bin").expect("object"), shorter);
}

#[test]
fn the_disk_cache_stays_under_its_cap_and_serves_reads() {
    let b = bucket("diskcache");
    let big = pattern(5 * 1024 * 1024 + 333, 4);
    put_all(&b, vec![("big.bin".into(), big.clone())]);
    let cache = tempfile::tempdir().expect("cache dir");
    let cap = 3 * 1024 * 1024 + 4096;
    let m = Mount::new(
        &b,
        &[
            "--cache-dir",
            cache.path().to_str().expect("utf8"),
            "--max-cache-size",
            &cap.to_string(),
            "--max-memory",
            "8M",
        ],
    );
    assert_eq!(std::fs::read(m.p("big.bin")).expect("read"), big);
    let blocks = cache.path().join("cosmount-blocks");
    let on_disk: u64 = std::fs::read_dir(&blocks)
        .expect("cache dir made")
        .map(|e| e.expect("entry").metadata().expect("stat").len())
        .sum();
    assert!(on_disk > 0, "nothing written to the disk cache");
    assert!(on_disk <= cap, "disk cache {on_disk} bytes over its cap {cap}");
    // Reads at odd offsets, backwards, come back right (from memory or disk blocks).
    for skip in [4000usize, 10, 2500] {
        let out = std::process::Command::new("dd")
            .arg(format!("if={}", m.p("big.bin")))
            .args(["bs=1000", &format!("skip={skip}"), "count=300", "status=none"])
            .output()
            .expect("dd");
        assert!(out.status.success());
        assert_eq!(out.stdout, &big[skip * 1000..skip * 1000 + 300_000], "dd skip={skip}");
    }
}

#[test]
fn a_tiny_memory_budget_slows_but_loses_nothing() {
    // 6 MiB of budget for a 13 MiB multipart write and concurrent reads: writers wait, reads
    // shrink their read-ahead, every byte arrives.
    let b = bucket("budget");
    let src = tempfile::tempdir().expect("src");
    let big = pattern(13 * 1024 * 1024 + 7, 5);
    std::fs::write(src.path().join("big.bin"), &big).expect("write src");
    let other = pattern(4 * 1024 * 1024, 6);
    put_all(&b, vec![("other.bin".into(), other.clone())]);
    let m = Mount::new(&b, &["--max-memory", "6M", "--part-size", "5"]);
    let reader = {
        let p = m.p("other.bin");
        std::thread::spawn(move || std::fs::read(p).expect("read"))
    };
    sh_ok(&format!("cp {}/big.bin {}/", src.path().display(), m.p("")));
    assert_eq!(reader.join().expect("reader"), other);
    assert_eq!(get(&b, "big.bin").expect("object"), big);
    assert_eq!(std::fs::read(m.p("big.bin")).expect("read back"), big);
    assert_eq!(multipart_uploads(&b), 0);
}

#[test]
fn a_repeated_listing_within_the_ttl_is_served_from_the_cache() {
    let b = bucket("lscache");
    put_all(&b, (0..30).map(|i| (format!("d/f{i:02}"), vec![b'x'; i])).collect());
    let m = Mount::new(&b, &["--metadata-ttl", "30"]);
    let first = sh_ok(&format!("ls {}", m.p("d")));
    assert_eq!(first.lines().count(), 30);
    let listed = log_count(&m, "listed a page");
    let second = sh_ok(&format!("ls {}", m.p("d")));
    assert_eq!(second, first);
    assert_eq!(log_count(&m, "listed a page"), listed, "the second ls listed again");
    assert!(log_count(&m, "listing from the cache") >= 1);
    // A change through the mount drops the kept listing: the new file shows at once.
    std::fs::write(m.p("d/new"), b"n").expect("create");
    let third = sh_ok(&format!("ls {}", m.p("d")));
    assert_eq!(third.lines().count(), 31, "{third}");
    assert!(third.lines().any(|l| l == "new"));
}

#[test]
fn reading_a_tree_again_after_the_ttl_lists_each_directory_once_instead_of_asking_per_file() {
    let b = bucket("relist");
    let mut objects = Vec::new();
    for d in 0..3 {
        for f in 0..30 {
            objects.push((format!("t/d{d}/f{f:02}"), pattern(2000 + f, d as u8)));
        }
    }
    put_all(&b, objects.clone());
    let proxy = FaultProxy::start(&endpoint(), 0, 1);
    let m = Mount::with_endpoint(&b, &proxy.endpoint, &["--metadata-ttl", "1"]);
    let total: usize = objects.iter().map(|(_, v)| v.len()).sum();
    let read_all = || {
        let out = sh_ok(&format!("cd {} && find . -type f -exec cat {{}} + | wc -c", m.p("t")));
        assert_eq!(out.trim(), total.to_string(), "bytes read through the mount");
    };
    read_all();
    std::thread::sleep(Duration::from_millis(1300));
    // By name this time (no readdir to refresh the entries): every lookup finds an expired entry.
    let names: Vec<String> = objects
        .iter()
        .map(|(k, _)| k.trim_start_matches("t/").to_string())
        .collect();
    let before = proxy.requests.load(std::sync::atomic::Ordering::SeqCst);
    let out = sh_ok(&format!("cd {} && cat {} | wc -c", m.p("t"), names.join(" ")));
    assert_eq!(out.trim(), total.to_string());
    let again = proxy.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
    // 90 expired files: a HEAD and a LIST each would be 180 requests; a listing per directory
    // (and the tree's own) is a handful.
    assert!(again <= 12, "reading the tree again cost {again} requests");
    assert!(log_count(&m, "listed again to refresh expired entries") >= 3);
}

/// HEADs of `bucket/key` the IBM double has seen.
fn heads_of(ep: &str, key: &str) -> u64 {
    double_stats(ep)["heads"][key].as_u64().unwrap_or(0)
}

#[test]
fn a_later_mount_takes_ls_l_metadata_from_the_disk_cache_except_for_changed_objects() {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("metacache{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    let names: Vec<String> = (0..20).map(|i| format!("d/f{i:02}")).collect();
    rt().block_on(async {
        for k in &names {
            c.put_object()
                .bucket(&b)
                .key(k)
                .body(aws_sdk_s3::primitives::ByteStream::from(k.as_bytes().to_vec()))
                .metadata("mode", "33216") // 0o100700
                .metadata("uid", "1234")
                .send()
                .await
                .expect("put");
        }
    });
    let state = tempfile::tempdir().expect("state dir");
    let state_arg = state.path().to_str().expect("utf8").to_string();
    let ls = |m: &Mount| sh_ok(&format!("ls -ln '{}'", m.p("d")));
    let heads = || names.iter().map(|k| heads_of(&ep, k)).sum::<u64>();
    let m = Mount::with_endpoint(&b, &ep, &["--state-dir", &state_arg]);
    let first = ls(&m);
    assert_eq!(
        first.lines().filter(|l| l.starts_with("-rwx------ 1 1234 ")).count(),
        20,
        "{first}"
    );
    let after_first = heads();
    assert!(after_first >= 20, "the first mount HEADs every file: {after_first}");
    drop(m);
    // Another client changes one object: a new ETag.
    rt().block_on(
        c.put_object()
            .bucket(&b)
            .key("d/f07")
            .body(aws_sdk_s3::primitives::ByteStream::from(b"changed elsewhere".to_vec()))
            .metadata("mode", "33188") // 0o100644
            .send(),
    )
    .expect("put");
    let m = Mount::with_endpoint(&b, &ep, &["--state-dir", &state_arg]);
    wait_log(&m.log, "metadata cache on disk");
    let second = ls(&m);
    assert_eq!(
        second.lines().filter(|l| l.starts_with("-rwx------ 1 1234 ")).count(),
        19,
        "{second}"
    );
    assert!(
        second
            .lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("f07")),
        "the changed object shows its new mode: {second}"
    );
    assert_eq!(heads() - after_first, 1, "only the changed object is HEADed again");
    drop(m);
    // A damaged cache file is rebuilt, never trusted.
    let file = std::fs::read_dir(state.path())
        .expect("state dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("metadata-"))
        .expect("a metadata cache file");
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("damage");
    let m = Mount::with_endpoint(&b, &ep, &["--state-dir", &state_arg]);
    let third = ls(&m);
    assert_eq!(
        third.lines().filter(|l| l.starts_with("-rwx------ 1 1234 ")).count(),
        19,
        "{third}"
    );
    let log = wait_log(&m.log, "damaged record");
    assert!(log.contains("rebuilt"), "the log says so");
}
