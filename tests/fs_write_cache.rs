//! The write cache (`--write-cache`) without FUSE, over the in-memory store wrapped to fail:
//! closes that return before the upload, pending files seen and read, later changes applied in
//! order, a crash and the next mount, refusals kept in `recovery/`, and the unmount deadline.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::write::UploadConfig;
use cosmount::fs::write_cache::{WriteCache, WriteCacheConfig};
use cosmount::fs::{DirReplier, FsConfig, S3Fs, SetAttr};
use cosmount::store::fault::FaultStore;
use cosmount::store::memory::MemoryStore;

type Store = FaultStore<MemoryStore>;

fn config() -> FsConfig {
    FsConfig {
        upload: UploadConfig {
            part_size: 5 * 1024 * 1024,
            concurrency: 4,
            staging_dir: std::env::temp_dir(),
        },
        ..FsConfig::default()
    }
}

fn cache_config(dir: &std::path::Path) -> WriteCacheConfig {
    WriteCacheConfig {
        dir: dir.to_path_buf(),
        max_size: 1 << 30,
        max_file: 64 << 20,
        max_files: 10_000,
        uploads: 4,
        drain_deadline: Some(Duration::from_secs(20)),
    }
}

/// A mount of `store` with its write cache in `dir` (what an earlier mount left is reinstated).
fn mount(store: &Arc<Store>, dir: &std::path::Path) -> Arc<S3Fs<Store>> {
    let fs = Arc::new(S3Fs::new(store.clone(), config()));
    let (cache, left) = WriteCache::open(cache_config(dir), "mem", "bucket").expect("open the cache");
    fs.attach_write_cache(cache, left);
    fs
}

fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("files-"))
        .map(|d| {
            std::fs::read_dir(d.path())
                .expect("bucket dir")
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wc"))
                .count()
        })
        .sum()
}

async fn write_file(fs: &S3Fs<Store>, parent: u64, name: &str, body: &[u8]) -> u64 {
    let (e, fh) = fs
        .create(parent, OsStr::new(name), 0o640, 1000, 1000, 1)
        .await
        .expect("create");
    fs.write(fh, 0, body).await.expect("write");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    e.attr.ino
}

async fn read_all(fs: &S3Fs<Store>, parent: u64, name: &str) -> Vec<u8> {
    let e = fs.lookup(parent, OsStr::new(name)).await.expect("lookup");
    let fh = fs.open(e.attr.ino, libc::O_RDONLY, 1).await.expect("open");
    let body = fs.read(fh, 0, 1 << 20).await.expect("read");
    fs.release(fh).await.expect("release");
    body.to_vec()
}

#[derive(Default)]
struct Names(Vec<String>);

impl DirReplier for Names {
    fn add(&mut self, _ino: u64, _offset: u64, _kind: Kind, name: &str) -> bool {
        self.0.push(name.to_string());
        false
    }
}

async fn names(fs: &S3Fs<Store>, ino: u64) -> Vec<String> {
    let fh = fs.opendir(ino).await.expect("opendir").fh;
    let mut n = Names::default();
    fs.readdir(fh, 0, &mut n).await.expect("readdir");
    fs.releasedir(fh);
    let mut v: Vec<String> = n.0.into_iter().filter(|n| n != "." && n != "..").collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_returns_before_the_upload_and_the_pending_file_is_listed_read_and_stored_by_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FaultStore::new(MemoryStore::new()));
    store.delay_puts(Duration::from_millis(400));
    let fs = mount(&store, dir.path());
    let start = Instant::now();
    let ino = write_file(&fs, ROOT_INO, "a.txt", b"hello, cache").await;
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "close waited for the upload"
    );
    assert!(store.inner().body("a.txt").is_none(), "not in S3 yet");
    assert_eq!(entries(dir.path()), 1, "durable in the cache");
    assert_eq!(names(&fs, ROOT_INO).await, ["a.txt"]);
    assert_eq!(fs.getattr(ino).await.expect("getattr").attr.size, 12);
    assert_eq!(read_all(&fs, ROOT_INO, "a.txt").await, b"hello, cache");
    // fsync through a read-only handle (`sync FILE`) waits for S3.
    let fh = fs.open(ino, libc::O_RDONLY, 1).await.expect("open");
    fs.fsync(fh).await.expect("fsync");
    fs.release(fh).await.expect("release");
    assert_eq!(store.inner().body("a.txt").as_deref(), Some(&b"hello, cache"[..]));
    let meta = store.inner().metadata("a.txt").expect("metadata");
    assert_eq!(meta.get("mode").map(String::as_str), Some("33184"), "0640 regular file");
    assert_eq!(entries(dir.path()), 0, "the entry goes once S3 has the object");
    assert_eq!(store.inner().counts.put.load(Ordering::Relaxed), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_writes_attributes_renames_and_deletes_of_pending_files_apply_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FaultStore::new(MemoryStore::new()));
    let fs = mount(&store, dir.path());
    let d = fs
        .mkdir(ROOT_INO, OsStr::new("d"), 0o755, 0, 0)
        .await
        .expect("mkdir")
        .attr
        .ino;
    // The server is down: everything stays pending until it heals.
    store.fail("PutObject", 0, usize::MAX);
    let a = write_file(&fs, d, "a", b"first").await;
    // Written again (append), then chmod: one final version.
    let fh = fs.open(a, libc::O_WRONLY, 1).await.expect("open");
    fs.write(fh, 5, b" second").await.expect("write");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    fs.setattr(
        a,
        None,
        SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
    )
    .await
    .expect("chmod");
    // Renamed (never stored: its entry moves), renamed over, deleted.
    write_file(&fs, d, "tmp", b"renamed").await;
    fs.rename(d, OsStr::new("tmp"), d, OsStr::new("b"), 0)
        .await
        .expect("rename");
    write_file(&fs, d, "c", b"replaced").await;
    write_file(&fs, d, "c2", b"replacement").await;
    fs.rename(d, OsStr::new("c2"), d, OsStr::new("c"), 0)
        .await
        .expect("rename over");
    write_file(&fs, d, "gone", b"deleted").await;
    fs.unlink(d, OsStr::new("gone")).await.expect("unlink");
    assert_eq!(names(&fs, d).await, ["a", "b", "c"]);
    assert_eq!(
        fs.rmdir(ROOT_INO, OsStr::new("d")).await.expect_err("rmdir").errno,
        libc::ENOTEMPTY
    );
    assert_eq!(entries(dir.path()), 3, "one entry per file");
    store.heal();
    fs.fsyncdir(ROOT_INO).await.expect("sync the mount");
    let m = store.inner();
    assert_eq!(m.body("d/a").as_deref(), Some(&b"first second"[..]));
    assert_eq!(
        m.metadata("d/a").and_then(|x| x.get("mode").cloned()).as_deref(),
        Some("33152")
    );
    assert_eq!(m.body("d/b").as_deref(), Some(&b"renamed"[..]));
    assert_eq!(m.body("d/c").as_deref(), Some(&b"replacement"[..]));
    for never in ["d/tmp", "d/c2", "d/gone"] {
        assert!(m.body(never).is_none(), "{never} was never meant to be stored");
    }
    assert_eq!(
        m.counts.put.load(Ordering::Relaxed),
        4,
        "the marker and three final versions"
    );
    assert_eq!(entries(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_leaves_closed_files_in_the_cache_and_the_next_mount_uploads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FaultStore::new(MemoryStore::new()));
    store.fail("PutObject", 0, usize::MAX);
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                format!("f{i:02}"),
                format!("contents of file {i}").repeat(i + 1).into_bytes(),
            )
        })
        .collect();
    {
        let fs = mount(&store, dir.path());
        for (name, body) in &files {
            write_file(&fs, ROOT_INO, name, body).await;
        }
        assert_eq!(entries(dir.path()), 40);
        // The daemon dies: nothing is drained, the cache stays as it is.
    }
    store.heal();
    let fs = mount(&store, dir.path());
    // Pending again at once: seen and read before they are uploaded.
    assert_eq!(read_all(&fs, ROOT_INO, "f07").await, files[7].1);
    assert_eq!(fs.drain().await, 0, "every file uploaded");
    for (name, body) in &files {
        assert_eq!(store.inner().body(name).as_deref(), Some(&body[..]), "{name}");
        assert_eq!(
            store
                .inner()
                .metadata(name)
                .and_then(|m| m.get("uid").cloned())
                .as_deref(),
            Some("1000")
        );
    }
    assert_eq!(entries(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_kept_in_recovery_and_reported_by_fsync_and_the_deadline_leaves_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FaultStore::new(MemoryStore::new()));
    store.inner().insert("secret", b"the stored version".to_vec());
    store.deny("PutObject");
    let fs = mount(&store, dir.path());
    let ino = fs
        .lookup(ROOT_INO, OsStr::new("secret"))
        .await
        .expect("lookup")
        .attr
        .ino;
    let fh = fs.open(ino, libc::O_WRONLY | libc::O_TRUNC, 1).await.expect("open");
    fs.write(fh, 0, b"not for this bucket").await.expect("write");
    fs.flush(fh, 1).await.expect("close returns: the file is in the cache");
    fs.release(fh).await.expect("release");
    let deadline = Instant::now() + Duration::from_secs(10);
    while entries(dir.path()) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("files-"))
        .expect("bucket dir")
        .path()
        .join("recovery/secret");
    assert_eq!(
        std::fs::read(&recovered).expect("kept in recovery/"),
        b"not for this bucket"
    );
    // `sync secret` reports it; the object keeps its stored version, which the mount shows.
    let fh = fs.open(ino, libc::O_RDONLY, 1).await.expect("open the stored version");
    let e = fs.fsync(fh).await.expect_err("fsync reports the refusal");
    assert_eq!(e.errno, libc::EIO);
    assert!(e.message.contains("recovery"), "{}", e.message);
    assert_eq!(fs.read(fh, 0, 100).await.expect("read").as_ref(), b"the stored version");
    fs.release(fh).await.expect("release");
    assert_eq!(
        store.inner().body("secret").as_deref(),
        Some(&b"the stored version"[..])
    );

    // A server that stays unreachable: the unmount deadline leaves the file in the cache.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = Arc::new(FaultStore::new(MemoryStore::new()));
    store2.fail("PutObject", 0, usize::MAX);
    let fs2 = Arc::new(S3Fs::new(store2.clone(), config()));
    let mut cfg = cache_config(dir2.path());
    cfg.drain_deadline = Some(Duration::from_millis(500));
    let (cache, left) = WriteCache::open(cfg, "mem", "bucket").expect("open");
    fs2.attach_write_cache(cache, left);
    write_file(&fs2, ROOT_INO, "waits", b"for the server").await;
    let start = Instant::now();
    assert_eq!(fs2.drain().await, 1, "one file left for the next mount");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(entries(dir2.path()), 1);
}
