//! The account mount's routing without FUSE, over in-memory buckets: the root lists buckets with
//! inode numbers of their own, each bucket's inodes and handles are renumbered on the way out and
//! back in, mkdir/rmdir make and delete buckets, and what cannot be done at the root or across
//! buckets is refused with its errno.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cosmount::account::{AccountRoot, Buckets, Mount};
use cosmount::error::{FsError, FsResult};
use cosmount::fs::attr::Presentation;
use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::{DirReplier, FsConfig, S3Fs};
use cosmount::store::buckets::BucketInfo;
use cosmount::store::memory::MemoryStore;
use cosmount::store::StoreError;

/// Buckets in memory: CreateBucket, DeleteBucket (refused while objects remain), and one
/// `S3Fs` per bucket.
#[derive(Default, Clone)]
struct MemoryBuckets(Arc<Mutex<BTreeMap<String, Arc<MemoryStore>>>>);

#[async_trait]
impl Buckets<MemoryStore> for MemoryBuckets {
    async fn list(&self) -> Result<Vec<BucketInfo>, StoreError> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .keys()
            .map(|name| BucketInfo {
                name: name.clone(),
                created: None,
                location: None,
            })
            .collect())
    }

    async fn create(&self, name: &str) -> Result<(), StoreError> {
        let mut m = self.0.lock().expect("lock");
        if m.contains_key(name) {
            return Err(StoreError::BucketExists { bucket: name.into() });
        }
        m.insert(name.into(), Arc::new(MemoryStore::new()));
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let mut m = self.0.lock().expect("lock");
        match m.get(name) {
            None => Err(StoreError::NotFound { key: name.into() }),
            Some(s) if !s.keys().is_empty() => Err(StoreError::BucketNotEmpty { bucket: name.into() }),
            Some(_) => {
                m.remove(name);
                Ok(())
            }
        }
    }

    async fn open(&self, name: &str) -> FsResult<Arc<S3Fs<MemoryStore>>> {
        let store = self
            .0
            .lock()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| FsError::new(libc::ENOENT, "no such bucket"))?;
        Ok(Arc::new(S3Fs::new(store, FsConfig::default())))
    }
}

#[derive(Default)]
struct Collect(Vec<(u64, Kind, String)>);

impl DirReplier for Collect {
    fn add(&mut self, ino: u64, _offset: u64, kind: Kind, name: &str) -> bool {
        self.0.push((ino, kind, name.to_string()));
        false
    }
}

/// Buckets by name, each with its objects (key, body).
type Objects<'a> = &'a [(&'a str, &'a [u8])];

fn account(buckets: &[(&str, Objects<'_>)]) -> (MemoryBuckets, Mount<MemoryStore>) {
    let mem = MemoryBuckets::default();
    for (name, objects) in buckets {
        let store = MemoryStore::new();
        for (k, v) in *objects {
            store.insert(k, v.to_vec());
        }
        mem.0.lock().expect("lock").insert(name.to_string(), Arc::new(store));
    }
    let presentation = Presentation {
        uid: 0,
        gid: 0,
        file_mode: 0o644,
        dir_mode: 0o755,
    };
    let root = AccountRoot::new(
        Box::new(mem.clone()),
        presentation,
        std::time::Duration::from_secs(1),
        false,
    );
    (mem, Mount::Account(Arc::new(root)))
}

async fn ls(m: &Mount<MemoryStore>, ino: u64) -> Vec<(u64, Kind, String)> {
    let d = m.opendir(ino).await.expect("opendir");
    let mut c = Collect::default();
    m.readdir(d.fh, 0, &mut c).await.expect("readdir");
    // The kernel reads again from the last offset: nothing more.
    let mut again = Collect::default();
    m.readdir(d.fh, c.0.len() as u64, &mut again).await.expect("readdir");
    assert!(again.0.is_empty(), "{:?}", again.0);
    m.releasedir(d.fh);
    c.0
}

fn errno<T: std::fmt::Debug>(r: FsResult<T>) -> i32 {
    r.expect_err("an error").errno
}

#[tokio::test]
async fn buckets_are_folders_with_inodes_of_their_own() {
    let (_, m) = account(&[("alpha", &[("a/x.txt", b"x")]), ("beta", &[("y.txt", b"why")])]);
    let top = ls(&m, ROOT_INO).await;
    let names: Vec<&str> = top.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(names, [".", "..", "alpha", "beta"]);
    let (a, b) = (top[2].0, top[3].0);
    assert!(a != b && a != ROOT_INO && b != ROOT_INO);
    let beta = m.lookup(ROOT_INO, OsStr::new("beta")).await.expect("lookup");
    assert_eq!(beta.attr.ino, b, "readdir and lookup agree");
    assert_eq!(beta.attr.kind, Kind::Dir);
    // Inside a bucket, numbers are the bucket's own with its slot on top.
    let y = m.lookup(b, OsStr::new("y.txt")).await.expect("lookup in a bucket");
    assert_eq!(y.attr.size, 3);
    assert_eq!(m.getattr(y.attr.ino).await.expect("getattr").attr.ino, y.attr.ino);
    let fh = m.open(y.attr.ino, libc::O_RDONLY, 1).await.expect("open");
    assert_eq!(&m.read(fh, 0, 10).await.expect("read")[..], b"why");
    m.release(fh).await.expect("release");
    let in_alpha = ls(&m, a).await;
    assert!(in_alpha
        .iter()
        .any(|(ino, k, n)| n == "a" && *k == Kind::Dir && *ino >> 40 == a >> 40));
    // Same names in two buckets are two inodes.
    let ax = m.lookup(a, OsStr::new("a")).await.expect("a/");
    assert_ne!(ax.attr.ino, y.attr.ino);
    assert_eq!(errno(m.lookup(ROOT_INO, OsStr::new("gamma")).await), libc::ENOENT);
}

#[tokio::test]
async fn writes_renames_and_what_the_root_refuses() {
    let (mem, m) = account(&[("alpha", &[]), ("beta", &[])]);
    let a = m.lookup(ROOT_INO, OsStr::new("alpha")).await.expect("alpha").attr.ino;
    let b = m.lookup(ROOT_INO, OsStr::new("beta")).await.expect("beta").attr.ino;
    let (e, fh) = m
        .create(a, OsStr::new("new.txt"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    m.write_as(fh, 0, b"hello", true).await.expect("write");
    m.flush(fh, 1).await.expect("flush");
    m.release(fh).await.expect("release");
    let stored = mem.0.lock().expect("lock")["alpha"].body("new.txt");
    assert_eq!(stored.as_deref(), Some(&b"hello"[..]), "stored in alpha");
    assert!(mem.0.lock().expect("lock")["beta"].keys().is_empty());
    m.rename(a, OsStr::new("new.txt"), a, OsStr::new("renamed.txt"), 0)
        .await
        .expect("rename within a bucket");
    assert_eq!(
        errno(m.rename(a, OsStr::new("renamed.txt"), b, OsStr::new("x"), 0).await),
        libc::EXDEV
    );
    assert_eq!(
        errno(
            m.rename(ROOT_INO, OsStr::new("alpha"), ROOT_INO, OsStr::new("gamma"), 0)
                .await
        ),
        libc::EPERM
    );
    assert_eq!(
        errno(m.create(ROOT_INO, OsStr::new("f"), 0o644, 0, 0, 1).await),
        libc::EPERM
    );
    assert_eq!(errno(m.unlink(ROOT_INO, OsStr::new("alpha")).await), libc::EISDIR);
    assert_eq!(errno(m.open(ROOT_INO, libc::O_RDONLY, 1).await), libc::EISDIR);
    assert_eq!(
        errno(m.setxattr(ROOT_INO, OsStr::new("user.x"), b"1", 0).await),
        libc::EPERM
    );
    assert!(m.listxattr(ROOT_INO).await.expect("listxattr").is_empty());
    assert_eq!(
        errno(m.getattr(e.attr.ino + (7 << 40)).await),
        libc::ESTALE,
        "no such slot"
    );
}

#[tokio::test]
async fn mkdir_and_rmdir_make_and_delete_buckets() {
    let (mem, m) = account(&[("alpha", &[("k", b"v")])]);
    assert_eq!(
        errno(m.mkdir(ROOT_INO, OsStr::new("Bad_Name"), 0o755, 0, 0).await),
        libc::EINVAL
    );
    assert_eq!(
        errno(m.mkdir(ROOT_INO, OsStr::new("alpha"), 0o755, 0, 0).await),
        libc::EEXIST
    );
    let made = m
        .mkdir(ROOT_INO, OsStr::new("gamma"), 0o755, 0, 0)
        .await
        .expect("mkdir");
    assert_eq!(made.attr.kind, Kind::Dir);
    assert!(mem.0.lock().expect("lock").contains_key("gamma"));
    let names: Vec<String> = ls(&m, ROOT_INO).await.into_iter().map(|(_, _, n)| n).collect();
    assert!(names.contains(&"gamma".to_string()), "{names:?}");
    // A bucket with objects stays.
    assert_eq!(errno(m.rmdir(ROOT_INO, OsStr::new("alpha")).await), libc::ENOTEMPTY);
    assert!(mem.0.lock().expect("lock").contains_key("alpha"));
    m.rmdir(ROOT_INO, OsStr::new("gamma")).await.expect("rmdir");
    assert!(!mem.0.lock().expect("lock").contains_key("gamma"));
    assert_eq!(errno(m.lookup(ROOT_INO, OsStr::new("gamma")).await), libc::ENOENT);
    assert_eq!(errno(m.rmdir(ROOT_INO, OsStr::new("gamma")).await), libc::ENOENT);
    // Made again, it is usable at once (its filesystem opened anew).
    let again = m
        .mkdir(ROOT_INO, OsStr::new("gamma"), 0o755, 0, 0)
        .await
        .expect("mkdir");
    let (_, fh) = m
        .create(again.attr.ino, OsStr::new("f"), 0o644, 0, 0, 1)
        .await
        .expect("create in the new bucket");
    m.release(fh).await.expect("release");
    assert_eq!(mem.0.lock().expect("lock")["gamma"].keys(), vec!["f".to_string()]);
}
