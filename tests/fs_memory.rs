//! The filesystem layer without FUSE, over the in-memory store: listings at several page sizes,
//! the listing pitfalls, what lookups cost, and reads.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::{DirPlusReplier, DirReplier, Entry, FsConfig, S3Fs};
use cosmount::store::fault::FaultStore;
use cosmount::store::memory::MemoryStore;

#[derive(Default)]
struct Collect {
    entries: Vec<(u64, u64, Kind, String)>,
    limit: usize,
}

impl DirReplier for Collect {
    fn add(&mut self, ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        if self.limit != 0 && self.entries.len() >= self.limit {
            return true;
        }
        self.entries.push((ino, offset, kind, name.to_string()));
        false
    }
}

/// Read entries of `fh` from `offset` as the kernel does: readdir again after each answer (an
/// answer may stop at a page boundary) until `limit` entries (0: all) or an empty answer.
async fn readdir_upto(fs: &S3Fs<MemoryStore>, fh: u64, offset: u64, limit: usize) -> Vec<(u64, u64, Kind, String)> {
    let mut all: Vec<(u64, u64, Kind, String)> = Vec::new();
    let mut offset = offset;
    loop {
        let mut c = Collect {
            limit: if limit == 0 { 0 } else { limit - all.len() },
            ..Default::default()
        };
        fs.readdir(fh, offset, &mut c).await.expect("readdir");
        let Some(last) = c.entries.last() else { break };
        offset = last.1;
        all.extend(c.entries);
        if limit != 0 && all.len() >= limit {
            break;
        }
    }
    all
}

fn fs_with(keys: &[&str], page: usize, prefix: &str) -> S3Fs<MemoryStore> {
    let config = FsConfig {
        prefix: prefix.into(),
        list_page_size: 1000,
        ..FsConfig::default()
    };
    fs_with_config(keys, page, config)
}

/// An fs over objects named `keys`, each holding its own key, listed `page` keys a page.
fn fs_with_config<K: AsRef<str>>(keys: &[K], page: usize, config: FsConfig) -> S3Fs<MemoryStore> {
    let store = MemoryStore::with_page_size(page);
    for k in keys {
        store.insert(k.as_ref(), k.as_ref().as_bytes().to_vec());
    }
    S3Fs::new(Arc::new(store), config)
}

/// List a directory completely, `chunk` entries per readdir call (as a small kernel buffer would).
async fn list(fs: &S3Fs<MemoryStore>, ino: u64, chunk: usize) -> Vec<(String, Kind)> {
    let fh = fs.opendir(ino).await.expect("opendir").fh;
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let mut c = Collect {
            limit: chunk,
            ..Default::default()
        };
        fs.readdir(fh, offset, &mut c).await.expect("readdir");
        if c.entries.is_empty() {
            break;
        }
        offset = c.entries.last().map(|e| e.1).unwrap_or(offset);
        all.extend(c.entries.into_iter().map(|e| (e.3, e.2)));
    }
    fs.releasedir(fh);
    all.into_iter().filter(|(n, _)| n != "." && n != "..").collect()
}

const TREE: &[&str] = &[
    "a",
    "a-/x",
    "a.txt",
    "a/1",
    "a/2",
    "b//c",
    "dir-marker/",
    "f",
    "f/",
    "g/..",
    "h/./i",
    "z",
];

#[tokio::test]
async fn listing_is_the_same_at_page_sizes_1_2_3_and_1000() {
    let expected = {
        let mut v = vec![
            ("a".to_string(), Kind::Dir),
            ("a-".to_string(), Kind::Dir),
            ("a.txt".to_string(), Kind::File),
            ("b".to_string(), Kind::Dir),
            ("dir-marker".to_string(), Kind::Dir),
            ("f".to_string(), Kind::Dir),
            ("g".to_string(), Kind::Dir),
            ("h".to_string(), Kind::Dir),
            ("z".to_string(), Kind::File),
        ];
        v.sort();
        v
    };
    for page in [1, 2, 3, 1000] {
        for chunk in [1, 2, 1000] {
            let fs = fs_with(TREE, page, "");
            let mut got = list(&fs, ROOT_INO, chunk).await;
            got.sort();
            assert_eq!(got, expected, "page size {page}, {chunk} entries per readdir");
        }
    }
}

#[tokio::test]
async fn unusable_names_inside_directories_are_skipped() {
    let fs = fs_with(TREE, 2, "");
    let b = fs.lookup(ROOT_INO, OsStr::new("b")).await.expect("b");
    assert!(list(&fs, b.attr.ino, 10).await.is_empty(), "b//c has an empty segment");
    let g = fs.lookup(ROOT_INO, OsStr::new("g")).await.expect("g");
    assert!(list(&fs, g.attr.ino, 10).await.is_empty(), "g/.. cannot be a name");
    let f = fs.lookup(ROOT_INO, OsStr::new("f")).await.expect("f");
    assert_eq!(
        f.attr.kind,
        Kind::Dir,
        "f/ marker makes f a directory, hiding the file f"
    );
    assert!(list(&fs, f.attr.ino, 10).await.is_empty());
}

#[tokio::test]
async fn offsets_are_stable_across_calls_and_rewinds() {
    let keys: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let fs = fs_with(&refs, 7, "");
    let fh = fs.opendir(ROOT_INO).await.expect("opendir").fh;
    let first = readdir_upto(&fs, fh, 0, 20).await;
    assert_eq!(first.len(), 20);
    // Re-reading from an offset we were given returns the same next entries.
    let at = first[9].1;
    let again = readdir_upto(&fs, fh, at, 5).await;
    assert_eq!(again[..], first[10..15]);
    let rewind = readdir_upto(&fs, fh, 0, 0).await;
    assert_eq!(rewind.len(), 52);
    assert_eq!(rewind[..20], first[..]);
}

#[tokio::test]
async fn streaming_lists_one_page_for_the_first_entries() {
    let keys: Vec<String> = (0..5000).map(|i| format!("k{i:05}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let fs = fs_with(&refs, 1000, "");
    let fh = fs.opendir(ROOT_INO).await.expect("opendir").fh;
    let mut c = Collect {
        limit: 100,
        ..Default::default()
    };
    fs.readdir(fh, 0, &mut c).await.expect("readdir");
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        fs.store().counts.list.load(Ordering::Relaxed),
        2,
        "first 100 entries need one page, and one more is read ahead (no more than one)"
    );
    // Taking the rest uses the page read ahead, and reads one ahead at each step.
    let all = readdir_upto(&fs, fh, 0, 0).await;
    assert_eq!(all.len(), 5002);
    assert_eq!(
        fs.store().counts.list.load(Ordering::Relaxed),
        5,
        "5 pages, each listed once"
    );
}

#[tokio::test]
async fn a_listing_page_that_fails_reaches_the_reader_and_is_asked_for_again() {
    let store = MemoryStore::with_page_size(100);
    for i in 0..2000 {
        store.insert(&format!("k{i:04}"), b"x".to_vec());
    }
    let store = Arc::new(FaultStore::new(store));
    // Pages 1-6 come; the 7th LIST and the one asking for that page again fail.
    store.fail("ListObjectsV2", 6, 2);
    let fs = S3Fs::new(store.clone(), FsConfig::default());
    let fh = fs.opendir(ROOT_INO).await.expect("opendir").fh;
    let (mut names, mut offset, mut errors) = (Vec::new(), 0, Vec::new());
    loop {
        // 50 names a call, as a small buffer takes them: two calls per page.
        let mut c = Collect {
            limit: 50,
            ..Default::default()
        };
        match fs.readdir(fh, offset, &mut c).await {
            Ok(()) => {}
            Err(e) => {
                // The reader sees the failure, and calling again goes on where it stopped.
                errors.push(e.errno);
                assert!(errors.len() <= 2, "failures past the injected ones: {errors:?}");
                continue;
            }
        }
        let Some(last) = c.entries.last() else { break };
        offset = last.1;
        names.extend(c.entries.into_iter().map(|e| e.3).filter(|n| n != "." && n != ".."));
    }
    assert_eq!(errors.len(), 2, "both injected failures reached the reader");
    let want: Vec<String> = (0..2000).map(|i| format!("k{i:04}")).collect();
    assert_eq!(names, want, "every name once, in order");
    // 20 pages, each answered once (the failed calls never reached the bucket).
    assert_eq!(store.inner().counts.list.load(Ordering::Relaxed), 20);
}

#[tokio::test]
async fn lookups_after_a_listing_cost_no_requests_and_misses_are_cached() {
    // With --listing-attributes, the listing answers every lookup.
    let store = MemoryStore::new();
    for k in ["d/x", "d/y", "d/z/w"] {
        store.insert(k, b"data".to_vec());
    }
    let config = FsConfig {
        listing_attributes: true,
        ..FsConfig::default()
    };
    let fs = S3Fs::new(Arc::new(store), config);
    let counts = |fs: &S3Fs<MemoryStore>| {
        (
            fs.store().counts.head.load(Ordering::Relaxed),
            fs.store().counts.list.load(Ordering::Relaxed),
        )
    };
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("d");
    let _ = list(&fs, d.attr.ino, 1000).await;
    let before = counts(&fs);
    for n in ["x", "y", "z"] {
        fs.lookup(d.attr.ino, OsStr::new(n)).await.expect("lookup");
    }
    assert_eq!(before, counts(&fs), "entries from the listing answer lookups");
    let miss = fs.lookup(d.attr.ino, OsStr::new("nope")).await.unwrap_err();
    assert_eq!(miss.errno, libc::ENOENT);
    let heads = counts(&fs).0;
    let miss = fs.lookup(d.attr.ino, OsStr::new("nope")).await.unwrap_err();
    assert_eq!(miss.errno, libc::ENOENT);
    assert_eq!(counts(&fs).0, heads, "negative entries are cached");
}

#[tokio::test]
async fn full_attributes_head_each_file_once_per_etag() {
    let store = MemoryStore::new();
    for k in ["d/x", "d/y"] {
        store.insert(k, b"data".to_vec());
    }
    let config = FsConfig {
        metadata_ttl: std::time::Duration::from_secs(60),
        ..FsConfig::default()
    };
    let fs = S3Fs::new(Arc::new(store), config);
    let heads = || fs.store().counts.head.load(Ordering::Relaxed);
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("d");
    let _ = list(&fs, d.attr.ino, 1000).await;
    let h0 = heads();
    fs.lookup(d.attr.ino, OsStr::new("x")).await.expect("x");
    fs.lookup(d.attr.ino, OsStr::new("y")).await.expect("y");
    assert_eq!(heads() - h0, 2, "one HEAD per file for its metadata");
    // A new listing with unchanged ETags: the metadata is still known, no HEAD.
    let _ = list(&fs, d.attr.ino, 1000).await;
    let h1 = heads();
    fs.lookup(d.attr.ino, OsStr::new("x")).await.expect("x");
    fs.lookup(d.attr.ino, OsStr::new("y")).await.expect("y");
    assert_eq!(heads(), h1);
}

/// A listing reopened from the listing cache feeds the metadata prefetch like a fresh one: the
/// first lookup that needs a HEAD fetches the metadata of every file of the directory.
#[tokio::test]
async fn a_kept_listing_feeds_the_metadata_prefetch() {
    let keys: Vec<String> = (0..20).map(|i| format!("d/f{i:02}")).collect();
    let config = FsConfig {
        metadata_ttl: std::time::Duration::from_secs(60),
        ..FsConfig::default()
    };
    let fs = fs_with_config(&keys, 1000, config);
    let heads = || fs.store().counts.head.load(Ordering::Relaxed);
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("d").attr.ino;
    assert_eq!(list(&fs, d, 1000).await.len(), 20);
    let lists = fs.store().counts.list.load(Ordering::Relaxed);
    let fh = fs.opendir(d).await.expect("opendir").fh;
    assert_eq!(readdir_upto(&fs, fh, 0, 0).await.len(), 22);
    assert_eq!(
        fs.store().counts.list.load(Ordering::Relaxed),
        lists,
        "from the listing cache"
    );
    let h0 = heads();
    fs.lookup(d, OsStr::new("f00")).await.expect("f00");
    for _ in 0..100 {
        if heads() - h0 == 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(heads() - h0, 20, "one lookup fetched every file's metadata");
    for i in 1..20 {
        fs.lookup(d, OsStr::new(&format!("f{i:02}"))).await.expect("lookup");
    }
    assert_eq!(heads() - h0, 20, "the other lookups sent nothing");
    fs.releasedir(fh);
}

#[tokio::test]
async fn prefix_mount_reads_and_errors() {
    let fs = fs_with(&["p/q/file", "p/q/sub/x", "p/other"], 1000, "p/q/");
    let names = list(&fs, ROOT_INO, 1000).await;
    assert_eq!(
        names,
        vec![("file".to_string(), Kind::File), ("sub".to_string(), Kind::Dir)]
    );
    let f = fs.lookup(ROOT_INO, OsStr::new("file")).await.expect("file");
    assert_eq!(f.attr.size, "p/q/file".len() as u64);
    let fh = fs.open(f.attr.ino, libc::O_RDONLY, 1).await.expect("open");
    assert_eq!(&fs.read(fh, 2, 100).await.expect("read")[..], b"q/file");
    assert!(fs.read(fh, 100, 10).await.expect("read").is_empty());
    fs.release(fh).await.expect("release");
    let ro = S3Fs::new(
        Arc::new(MemoryStore::new()),
        FsConfig {
            read_only: true,
            ..FsConfig::default()
        },
    );
    ro.store().insert("f", b"x".to_vec());
    let rf = ro.lookup(ROOT_INO, OsStr::new("f")).await.expect("lookup");
    assert_eq!(
        ro.open(rf.attr.ino, libc::O_WRONLY, 1).await.unwrap_err().errno,
        libc::EROFS
    );
    assert_eq!(
        ro.unlink(ROOT_INO, OsStr::new("f")).await.unwrap_err().errno,
        libc::EROFS
    );
    let long = "n".repeat(256);
    assert_eq!(
        fs.lookup(ROOT_INO, OsStr::new(&long)).await.unwrap_err().errno,
        libc::ENAMETOOLONG
    );
    assert_eq!(
        fs.lookup(f.attr.ino, OsStr::new("x")).await.unwrap_err().errno,
        libc::ENOTDIR
    );
}

/// Walk the tree under directory `ino` (at `path`) as `find` does through FUSE: opendir, then
/// the tree-walk read-ahead the opendir starts (run to its end here, so the walk is repeatable),
/// then readdir; depth first. Returns every directory's entries, by path.
async fn find(
    fs: &S3Fs<MemoryStore>,
    ino: u64,
    path: &str,
    ahead: bool,
) -> std::collections::BTreeMap<String, Vec<(String, Kind)>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![(ino, path.to_string())];
    while let Some((ino, path)) = stack.pop() {
        let fh = fs.opendir(ino).await.expect("opendir").fh;
        if ahead {
            for job in fs.walk_ahead(ino) {
                fs.list_ahead(job).await;
            }
        }
        let mut entries: Vec<(String, Kind)> = readdir_upto(fs, fh, 0, 0)
            .await
            .into_iter()
            .filter(|e| e.3 != "." && e.3 != "..")
            .map(|e| (e.3, e.2))
            .collect();
        fs.releasedir(fh);
        for (name, kind) in entries.iter().rev() {
            if *kind == Kind::Dir {
                let e = fs.lookup(ino, OsStr::new(name)).await.expect("lookup");
                stack.push((e.attr.ino, format!("{path}/{name}")));
            }
        }
        entries.sort();
        out.insert(path, entries);
    }
    out
}

/// A tree walk lists the walked subtree flat: the same entries as listing each directory on its
/// own (every pitfall of readdir.rs included), in far fewer requests; a subtree too big for one
/// flat listing falls back to listing directories ahead one by one, with the same entries.
#[tokio::test]
async fn a_tree_walk_lists_the_subtree_flat_with_the_same_entries() {
    let mut keys: Vec<String> = Vec::new();
    for d in 0..12 {
        for f in 0..5 {
            keys.push(format!("top/d{d:02}/f{f}"));
        }
    }
    for k in [
        "top/",
        "top/a.txt",
        "top/d03/sub/",
        "top/d03/sub/x",
        "top/d05",
        "top/d07//bad",
        "top/d08/./y",
        "top/d09-/z",
        "top/d10/deep/er/est",
        "top/d11/",
    ] {
        keys.push(k.to_string());
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let plain = {
        let fs = fs_with(&keys, 1000, "");
        let top = fs.lookup(ROOT_INO, OsStr::new("top")).await.expect("top");
        find(&fs, top.attr.ino, "top", false).await
    };
    assert_eq!(plain.len(), 17, "{:?}", plain.keys());
    assert!(plain["top/d03"].contains(&("sub".to_string(), Kind::Dir)));
    assert!(
        !plain["top"].contains(&("d05".to_string(), Kind::File)),
        "d05/ hides the file d05"
    );
    for page in [1000, 3, 1] {
        let fs = fs_with(&keys, page, "");
        let top = fs.lookup(ROOT_INO, OsStr::new("top")).await.expect("top");
        let lists = || fs.store().counts.list.load(Ordering::Relaxed);
        let before = lists();
        let walked = find(&fs, top.attr.ino, "top", true).await;
        assert_eq!(walked, plain, "page size {page}");
        let used = lists() - before;
        if page == 1000 {
            // top, d00, d01 (opened before the walk is known), then one flat listing.
            assert_eq!(used, 4, "LIST requests for 17 directories");
        }
        if page == 1 {
            // 82 keys: the flat listing stops at its page limit and the rest is listed per directory.
            assert!(used > 32, "{used}");
        }
    }
}

/// `rsync -a` onto a tree it does not list stats every name: from the second name looked up in
/// vain in a never-listed directory, that directory is listed once (then files answer from the
/// listing, absent names are absent without a request, and the files' metadata comes in one
/// parallel batch), while a subdirectory still shows the mode its marker object carries.
#[tokio::test]
async fn lookups_in_a_never_listed_directory_list_it_once() {
    use cosmount::store::{ObjectStore, PutOptions};
    let store = MemoryStore::with_page_size(5);
    for i in 0..20 {
        store.insert(&format!("t/d/f{i:02}"), b"x".to_vec());
        store.insert(&format!("t/e/old{i:02}"), b"x".to_vec());
    }
    store.insert("t/d/sub/inner", b"y".to_vec());
    let opts = PutOptions {
        metadata: [("mode".to_string(), "16832".to_string())].into(), // drwx------
        content_type: None,
    };
    store
        .put_object("t/d/sub/", bytes::Bytes::new(), &opts)
        .await
        .expect("marker");
    let fs = S3Fs::new(Arc::new(store), FsConfig::default());
    let counts = |fs: &S3Fs<MemoryStore>| {
        (
            fs.store().counts.list.load(Ordering::Relaxed),
            fs.store().counts.head.load(Ordering::Relaxed),
        )
    };
    let t = fs.lookup(ROOT_INO, OsStr::new("t")).await.expect("t");
    let d = fs.lookup(t.attr.ino, OsStr::new("d")).await.expect("d").attr.ino;
    let (lists0, _) = counts(&fs);
    fs.lookup(d, OsStr::new("f00")).await.expect("f00");
    fs.lookup(d, OsStr::new("f01")).await.expect("f01");
    let (lists2, heads2) = counts(&fs);
    assert_eq!(
        lists2 - lists0,
        1 + 5,
        "one lookup's LIST, then one listing of d (21 names, 5 pages)"
    );
    for i in 2..20 {
        let e = fs.lookup(d, OsStr::new(&format!("f{i:02}"))).await.expect("file");
        assert_eq!(e.attr.size, 1);
    }
    let miss = fs.lookup(d, OsStr::new("absent")).await.unwrap_err();
    assert_eq!(miss.errno, libc::ENOENT);
    let (lists3, heads3) = counts(&fs);
    assert_eq!(lists3, lists2, "files and absences answer from the listing");
    assert!(heads3 - heads2 <= 19, "each file's metadata once: {}", heads3 - heads2);
    let sub = fs.lookup(d, OsStr::new("sub")).await.expect("sub");
    assert_eq!(sub.attr.kind, Kind::Dir);
    assert_eq!(sub.attr.perm, 0o700, "the marker's mode, not the default");

    // `cp -r` into a never-listed directory: a lookup in vain, then a create, for each name.
    // The directory is not listed again and again (each create changes it).
    let e = fs.lookup(t.attr.ino, OsStr::new("e")).await.expect("e").attr.ino;
    let (lists4, _) = counts(&fs);
    for i in 0..8 {
        let n = format!("new{i}");
        assert_eq!(fs.lookup(e, OsStr::new(&n)).await.unwrap_err().errno, libc::ENOENT);
        let (_, fh) = fs.create(e, OsStr::new(&n), 0o644, 0, 0, 1).await.expect("create");
        fs.release(fh).await.expect("release");
    }
    let (lists5, _) = counts(&fs);
    assert!(
        lists5 - lists4 <= 8,
        "at most a LIST per lookup, no listing of e: {}",
        lists5 - lists4
    );
}

/// What readdirplus hands the kernel: (name, next offset, entry).
#[derive(Default)]
struct CollectPlus(Vec<(String, u64, Entry)>);

impl DirPlusReplier for CollectPlus {
    fn add(&mut self, offset: u64, name: &str, entry: &Entry) -> bool {
        self.0.push((name.to_string(), offset, entry.clone()));
        false
    }
}

async fn readdirplus(fs: &S3Fs<MemoryStore>, fh: u64, offset: u64) -> Vec<(String, u64, Entry)> {
    let mut c = CollectPlus::default();
    fs.readdirplus(fh, offset, &mut c).await.expect("readdirplus");
    c.0
}

/// readdirplus from `offset` to the end (replies may stop at page boundaries).
async fn readdirplus_rest(fs: &S3Fs<MemoryStore>, fh: u64, offset: u64) -> Vec<(String, u64, Entry)> {
    let mut all: Vec<(String, u64, Entry)> = Vec::new();
    let mut offset = offset;
    loop {
        let got = readdirplus(fs, fh, offset).await;
        let Some(last) = got.last() else { break };
        offset = last.1;
        all.extend(got);
    }
    all
}

/// readdirplus gives a name's attributes for the TTL only where a lookup would answer without
/// a request; a file known only from its listing (its mode, owner and mtime need a HEAD) comes
/// without (TTL 0), and the first reply ends at the first such entry, so that a plain `ls -f`
/// does not make the kernel build an inode per name. Further on (the kernel asks there only for
/// a reader that stats) a reply waits for the directory's metadata prefetch and carries the
/// attributes. Every entry handed out counts as a lookup the kernel will forget.
#[tokio::test]
async fn readdirplus_gives_attributes_only_where_they_are_known() {
    let keys: Vec<String> = (0..10).map(|i| format!("d/f{i}")).collect();
    let store = Arc::new(MemoryStore::with_page_size(1000));
    for k in &keys {
        store.insert(k, k.as_bytes().to_vec());
    }
    let fs = S3Fs::new(store.clone(), FsConfig::default());
    let ttl = FsConfig::default().metadata_ttl;
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("lookup d").attr.ino;

    let fh = fs.opendir(d).await.expect("opendir").fh;
    let first = readdirplus(&fs, fh, 0).await;
    let names: Vec<&str> = first.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [".", "..", "f0"],
        "the first reply stops after one unknown entry"
    );
    assert!(first[2].2.ttl.is_zero(), "f0 is known only from its listing");
    // Further on, for a reader that looked up no file (`find` after a subdirectory's lookup):
    // no HEAD of every file, and again one name without attributes.
    let heads = store.counts.head.load(Ordering::Relaxed);
    let next = readdirplus(&fs, fh, first[2].1).await;
    assert_eq!(next.len(), 1, "{:?}", next.iter().map(|e| &e.0).collect::<Vec<_>>());
    assert!(next[0].0 == "f1" && next[0].2.ttl.is_zero());
    assert_eq!(store.counts.head.load(Ordering::Relaxed), heads, "nothing fetched");
    // `ls -l`: its lstat of f0 starts the directory's metadata prefetch, and the replies
    // further on wait for it.
    fs.lookup(d, OsStr::new("f0")).await.expect("lookup f0");
    let rest = readdirplus_rest(&fs, fh, next[0].1).await;
    let names: Vec<&str> = rest.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"],
        "further on, all"
    );
    for e in &rest {
        assert_eq!(e.2.ttl, ttl, "{} waited for its metadata", e.0);
        assert_eq!(e.2.attr.size, 4, "d/fN holds its own name");
    }
    fs.releasedir(fh);

    // Looked up, the files' attributes are the same; the next listing carries them at once.
    let mut looked_up = Vec::new();
    for i in 0..10 {
        let e = fs.lookup(d, OsStr::new(&format!("f{i}"))).await.expect("lookup");
        looked_up.push(e);
    }
    let fh = fs.opendir(d).await.expect("opendir").fh;
    let mut all = readdirplus(&fs, fh, 0).await;
    assert_eq!(all.len(), 2 + 8, "the first reply holds 8 names");
    all.extend(readdirplus(&fs, fh, all[9].1).await);
    assert_eq!(all.len(), 12, "the next one all the rest");
    for (i, e) in all[2..].iter().enumerate() {
        assert_eq!(e.0, format!("f{i}"));
        assert_eq!(e.2.ttl, ttl);
        assert_eq!(e.2.attr.ino, looked_up[i].attr.ino);
        assert_eq!(e.2.attr.size, 4, "d/fN holds its own name");
        assert_eq!(e.2.attr.perm, looked_up[i].attr.perm);
    }
    fs.releasedir(fh);

    // f3 was handed out three times (lookup, then two listings): it stays until all are forgotten.
    let f3 = all[5].2.attr.ino;
    fs.forget(f3, 2);
    assert_eq!(fs.getattr(f3).await.expect("still known").attr.size, 4);
    fs.forget(f3, 1);
    assert!(fs.getattr(f3).await.is_err(), "forgotten as many times as handed out");
}

/// A plain readdir reply holds at most 1 000 names, however big the kernel's buffer: a reader
/// that stats them (`ls -l`) then looks those up, and the kernel asks for the rest with
/// READDIRPLUS, which waits for their metadata, instead of a lookup per name.
#[tokio::test]
async fn a_plain_readdir_reply_holds_at_most_1000_names() {
    let keys: Vec<String> = (0..2500).map(|i| format!("d/f{i:04}")).collect();
    // One listing page for all: only the cap splits the replies.
    let config = FsConfig {
        list_page_size: 5000,
        ..FsConfig::default()
    };
    let fs = fs_with_config(&keys, 5000, config);
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("lookup d").attr.ino;
    let fh = fs.opendir(d).await.expect("opendir").fh;
    let mut offset = 0;
    let mut sizes = Vec::new();
    let mut names = 0;
    loop {
        let mut c = Collect::default();
        fs.readdir(fh, offset, &mut c).await.expect("readdir");
        let Some(last) = c.entries.last() else { break };
        offset = last.1;
        names += c.entries.iter().filter(|e| !e.3.starts_with('.')).count();
        sizes.push(c.entries.len());
    }
    assert_eq!(names, 2500);
    assert!(sizes.iter().all(|&n| n <= 1002), "replies of {sizes:?}");
}

/// The first readdirplus reply of a directory holds at most 8 names even when all their
/// attributes are known (`--listing-attributes`): the kernel builds an inode for each, which
/// only a reader that stats uses, and it asks for the rest with READDIRPLUS only for such a
/// reader. Further on, one reply takes all.
#[tokio::test]
async fn the_first_readdirplus_reply_holds_at_most_8_names() {
    let keys: Vec<String> = (0..300).map(|i| format!("d/f{i:03}")).collect();
    let config = FsConfig {
        listing_attributes: true,
        ..FsConfig::default()
    };
    let fs = fs_with_config(&keys, 1000, config);
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("lookup d").attr.ino;
    let fh = fs.opendir(d).await.expect("opendir").fh;
    let first = readdirplus(&fs, fh, 0).await;
    assert_eq!(first.len(), 2 + 8, ". and .. and 8 names");
    assert!(first[2..].iter().all(|e| !e.2.ttl.is_zero()), "with their attributes");
    let rest = readdirplus(&fs, fh, first[9].1).await;
    assert_eq!(rest.len(), 300 - 8);
    assert_eq!(rest[0].0, "f008");
    assert!(rest.iter().all(|e| !e.2.ttl.is_zero() && e.2.attr.size == 6));
}

/// Subdirectories do not count toward those 8 names: the first reply gives up to 256 of them
/// with their attributes, so a walker (`find`) descending into each sends no lookup. It still
/// ends at the first file known only from its listing.
#[tokio::test]
async fn the_first_readdirplus_reply_gives_up_to_256_subdirectories_with_their_attributes() {
    let mut keys: Vec<String> = (0..300).map(|i| format!("t/d{i:03}/f")).collect();
    keys.push("t/e".to_string());
    let fs = fs_with_config(&keys, 1000, FsConfig::default());
    let t = fs.lookup(ROOT_INO, OsStr::new("t")).await.expect("lookup t").attr.ino;
    let fh = fs.opendir(t).await.expect("opendir").fh;
    let first = readdirplus(&fs, fh, 0).await;
    assert_eq!(first.len(), 2 + 256 + 8, ". and .. and 256 directories and 8 more");
    assert!(first[2..].iter().all(|e| !e.2.ttl.is_zero()), "with their attributes");
    assert_eq!(first[2 + 256 + 7].0, "d263");
    let rest = readdirplus(&fs, fh, first[first.len() - 1].1).await;
    assert_eq!(rest.len(), 300 - 264 + 1);
    assert_eq!(rest.last().map(|e| e.0.as_str()), Some("e"));
    assert!(
        rest.last().is_some_and(|e| e.2.ttl.is_zero()),
        "a file known only from its listing"
    );
}

/// `opendir` lets the kernel keep its cached entries of a directory unless the last reader
/// stat-ed them (a quarter of its names looked up) and the attributes the kernel got since have
/// expired: then the kernel reads the entries again, with attributes, instead of looking each
/// name up. A reader that only lists leaves the kernel its cache.
#[tokio::test]
async fn the_kernel_reads_a_stat_ed_directory_again_once_its_attributes_expired() {
    let ttl = std::time::Duration::from_secs(1);
    let keys: Vec<String> = (0..8).map(|i| format!("d/f{i}")).collect();
    let config = FsConfig {
        metadata_ttl: ttl,
        ..FsConfig::default()
    };
    let fs = fs_with_config(&keys, 1000, config);
    let d = fs.lookup(ROOT_INO, OsStr::new("d")).await.expect("lookup d").attr.ino;

    // `ls -l`: opened at t0, listed 0.4 s later (the listing is kept until then + TTL), and
    // every name looked up.
    let t0 = std::time::Instant::now();
    let fh = fs.opendir(d).await.expect("opendir").fh;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let listed = readdir_upto(&fs, fh, 0, 0).await;
    assert_eq!(listed.len(), 10);
    for i in 0..8 {
        fs.lookup(d, OsStr::new(&format!("f{i}"))).await.expect("lookup");
    }
    fs.releasedir(fh);
    let opened = fs.opendir(d).await.expect("opendir");
    assert!(
        opened.keep_cache,
        "within the TTL the kernel's attributes are still good"
    );
    fs.releasedir(opened.fh);

    // A TTL after t0, the kept listing is still fresh, the kernel's attributes are not.
    tokio::time::sleep(
        (t0 + ttl + std::time::Duration::from_millis(100)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let opened = fs.opendir(d).await.expect("opendir");
    assert!(
        t0.elapsed() < ttl + std::time::Duration::from_millis(400),
        "the listing is still kept"
    );
    assert!(!opened.keep_cache, "read again with attributes");
    // This reader only lists: the next may keep the kernel's cache.
    readdir_upto(&fs, opened.fh, 0, 0).await;
    fs.releasedir(opened.fh);
    let opened = fs.opendir(d).await.expect("opendir");
    assert!(opened.keep_cache);
}
