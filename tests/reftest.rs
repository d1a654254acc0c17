//! Reference-model test: random sequences of filesystem operations (create/write at offsets,
//! truncate, rename, unlink, mkdir, rmdir, setxattr/removexattr) and out-of-band PutObject /
//! DeleteObject by another client, applied to the filesystem layer over the in-memory store and to
//! a simple model; after every step the tree, every file's bytes, user metadata and every errno
//! must agree. Failing cases are kept in `reftest.proptest-regressions`.
//!
//! The second model runs the same operations, and chmod, over a mount with a write cache
//! (`--write-cache`), with the server going down and up, slow uploads in flight while other
//! operations run, syncs and drains, and crashes followed by a new mount of the same bucket and
//! cache directory (see `run_cached`). `PROPTEST_CASES=N` runs more cases than the defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::write::UploadConfig;
use cosmount::fs::write_cache::{WriteCache, WriteCacheConfig};
use cosmount::fs::{DirReplier, FsConfig, S3Fs, SetAttr, RENAME_NOREPLACE};
use cosmount::store::fault::FaultStore;
use cosmount::store::memory::MemoryStore;
use cosmount::store::ObjectStore;
use proptest::prelude::*;

const PATHS: &[&str] = &["a", "b", "d1", "d1/a", "d1/b", "d1/d2", "d1/d2/a", "d2", "d2/a"];

#[derive(Clone, Debug)]
enum Op {
    Write {
        path: usize,
        offset: u16,
        len: u16,
        byte: u8,
        trunc: bool,
    },
    Truncate {
        path: usize,
        size: u16,
    },
    Unlink {
        path: usize,
    },
    Mkdir {
        path: usize,
    },
    Rmdir {
        path: usize,
    },
    Rename {
        from: usize,
        to: usize,
        noreplace: bool,
    },
    SetX {
        path: usize,
        key: usize,
        value: u8,
    },
    RemoveX {
        path: usize,
        key: usize,
    },
    /// chmod (only in the write-cache model: `op` does not make it).
    Chmod {
        path: usize,
        mode: u16,
    },
    OobPut {
        path: usize,
        len: u16,
        byte: u8,
    },
    OobDelete {
        path: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        4 => (p.clone(), 0u16..3000, 0u16..2000, any::<u8>(), any::<bool>())
            .prop_map(|(path, offset, len, byte, trunc)| Op::Write { path, offset, len, byte, trunc }),
        1 => (p.clone(), 0u16..4000).prop_map(|(path, size)| Op::Truncate { path, size }),
        2 => p.clone().prop_map(|path| Op::Unlink { path }),
        2 => p.clone().prop_map(|path| Op::Mkdir { path }),
        1 => p.clone().prop_map(|path| Op::Rmdir { path }),
        2 => (p.clone(), p.clone(), any::<bool>()).prop_map(|(from, to, noreplace)| Op::Rename { from, to, noreplace }),
        1 => (p.clone(), 0usize..2, any::<u8>()).prop_map(|(path, key, value)| Op::SetX { path, key, value }),
        1 => (p.clone(), 0usize..2).prop_map(|(path, key)| Op::RemoveX { path, key }),
        1 => (p.clone(), 0u16..500, any::<u8>()).prop_map(|(path, len, byte)| Op::OobPut { path, len, byte }),
        1 => p.prop_map(|path| Op::OobDelete { path }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>, BTreeMap<String, String>),
    Dir,
}

#[derive(Clone, Default, Debug)]
struct Model {
    nodes: BTreeMap<String, Node>,
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

impl Model {
    fn dir_exists(&self, p: &str) -> bool {
        p.is_empty() || self.nodes.get(p) == Some(&Node::Dir)
    }
    /// errno for reaching the parent of `p`.
    fn parent_err(&self, p: &str) -> Option<i32> {
        let mut cur = String::new();
        for seg in parent(p).split('/').filter(|s| !s.is_empty()) {
            cur = if cur.is_empty() {
                seg.to_string()
            } else {
                format!("{cur}/{seg}")
            };
            match self.nodes.get(&cur) {
                None => return Some(libc::ENOENT),
                Some(Node::File(..)) => return Some(libc::ENOTDIR),
                Some(Node::Dir) => {}
            }
        }
        None
    }
    fn children(&self, p: &str) -> Vec<String> {
        let prefix = if p.is_empty() { String::new() } else { format!("{p}/") };
        self.nodes
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.len() > prefix.len())
            .cloned()
            .collect()
    }
}

/// Entries (without `.` and `..`), and the offset after the last one given.
struct Collect(Vec<(String, Kind)>, u64);
impl DirReplier for Collect {
    fn add(&mut self, _ino: u64, offset: u64, kind: Kind, name: &str) -> bool {
        self.1 = offset;
        if name != "." && name != ".." {
            self.0.push((name.to_string(), kind));
        }
        false
    }
}

/// The in-memory store under a filesystem, whether wrapped to fail or not (another client's
/// writes go to it directly).
trait Mem: ObjectStore {
    fn mem(&self) -> &MemoryStore;
}

impl Mem for MemoryStore {
    fn mem(&self) -> &MemoryStore {
        self
    }
}

impl Mem for FaultStore<MemoryStore> {
    fn mem(&self) -> &MemoryStore {
        self.inner()
    }
}

async fn walk<S: Mem>(fs: &S3Fs<S>, p: &str) -> Result<u64, i32> {
    let mut ino = ROOT_INO;
    for seg in p.split('/').filter(|s| !s.is_empty()) {
        ino = fs.lookup(ino, OsStr::new(seg)).await.map_err(|e| e.errno)?.attr.ino;
    }
    Ok(ino)
}

/// The parent directory of `p`, resolved as the kernel would (a file in the way is ENOTDIR).
async fn parent_ino<S: Mem>(fs: &S3Fs<S>, p: &str) -> Result<u64, i32> {
    let ino = walk(fs, parent(p)).await?;
    match fs.getattr(ino).await {
        Ok(e) if e.attr.kind == Kind::Dir => Ok(ino),
        Ok(_) => Err(libc::ENOTDIR),
        Err(e) => Err(e.errno),
    }
}

fn name(p: &str) -> &OsStr {
    OsStr::new(p.rsplit('/').next().unwrap_or(p))
}

fn errno<T>(r: Result<T, cosmount::error::FsError>) -> Result<(), i32> {
    r.map(|_| ()).map_err(|e| e.errno)
}

/// Apply `op` to the filesystem; returns Ok or the errno.
async fn apply_fs<S: Mem>(fs: &S3Fs<S>, op: &Op) -> Result<(), i32> {
    match op.clone() {
        Op::Write {
            path,
            offset,
            len,
            byte,
            trunc,
        } => {
            let p = PATHS[path];
            let dir = parent_ino(fs, p).await?;
            let fh = match fs.lookup(dir, name(p)).await {
                Ok(e) => {
                    if e.attr.kind == Kind::Dir {
                        return Err(libc::EISDIR);
                    }
                    let flags = libc::O_RDWR | if trunc { libc::O_TRUNC } else { 0 };
                    fs.open(e.attr.ino, flags, 1).await.map_err(|e| e.errno)?
                }
                Err(e) if e.errno == libc::ENOENT => {
                    fs.create(dir, name(p), 0o644, 0, 0, 1).await.map_err(|e| e.errno)?.1
                }
                Err(e) => return Err(e.errno),
            };
            let data = vec![byte; len as usize];
            let w = fs.write(fh, u64::from(offset), &data).await;
            let f = fs.flush(fh, 1).await;
            let r = fs.release(fh).await;
            errno(w)?;
            errno(f)?;
            errno(r)
        }
        Op::Truncate { path, size } => {
            let ino = walk(fs, PATHS[path]).await?;
            errno(
                fs.setattr(
                    ino,
                    None,
                    SetAttr {
                        atime: None,
                        size: Some(u64::from(size)),
                        ..Default::default()
                    },
                )
                .await,
            )
        }
        Op::Unlink { path } => errno(fs.unlink(parent_ino(fs, PATHS[path]).await?, name(PATHS[path])).await),
        Op::Mkdir { path } => errno(
            fs.mkdir(parent_ino(fs, PATHS[path]).await?, name(PATHS[path]), 0o755, 0, 0)
                .await,
        ),
        Op::Rmdir { path } => errno(fs.rmdir(parent_ino(fs, PATHS[path]).await?, name(PATHS[path])).await),
        Op::Rename { from, to, noreplace } => {
            let (f, t) = (PATHS[from], PATHS[to]);
            let fp = parent_ino(fs, f).await?;
            let tp = parent_ino(fs, t).await?;
            errno(
                fs.rename(fp, name(f), tp, name(t), if noreplace { RENAME_NOREPLACE } else { 0 })
                    .await,
            )
        }
        Op::SetX { path, key, value } => {
            let ino = walk(fs, PATHS[path]).await?;
            errno(
                fs.setxattr(
                    ino,
                    OsStr::new(&format!("user.k{key}")),
                    format!("v{value}").as_bytes(),
                    0,
                )
                .await,
            )
        }
        Op::RemoveX { path, key } => {
            let ino = walk(fs, PATHS[path]).await?;
            errno(fs.removexattr(ino, OsStr::new(&format!("user.k{key}"))).await)
        }
        Op::Chmod { path, mode } => {
            let ino = walk(fs, PATHS[path]).await?;
            errno(
                fs.setattr(
                    ino,
                    None,
                    SetAttr {
                        mode: Some(u32::from(mode)),
                        ..Default::default()
                    },
                )
                .await,
            )
        }
        Op::OobPut { path, len, byte } => {
            fs.store().mem().insert(PATHS[path], vec![byte; len as usize]);
            Ok(())
        }
        Op::OobDelete { path } => fs.store().mem().delete_object(PATHS[path]).await.map_err(|_| libc::EIO),
    }
}

/// Apply `op` to the model; returns what the filesystem must answer. `None`: skip (the op's
/// outcome depends on S3 behaviour the model does not describe, so it is not generated).
fn apply_model(m: &mut Model, op: &Op) -> Option<Result<(), i32>> {
    if let Op::Truncate { path, .. } | Op::SetX { path, .. } | Op::RemoveX { path, .. } | Op::Chmod { path, .. } = op {
        if let Some(e) = m.parent_err(PATHS[*path]) {
            return Some(Err(e));
        }
    }
    Some(match op.clone() {
        Op::Write {
            path,
            offset,
            len,
            byte,
            trunc,
        } => {
            let p = PATHS[path].to_string();
            if let Some(e) = m.parent_err(&p) {
                return Some(Err(e));
            }
            match m.nodes.get_mut(&p) {
                Some(Node::Dir) => Err(libc::EISDIR),
                Some(Node::File(data, _)) => {
                    if trunc {
                        data.clear();
                    }
                    write_at(data, offset as usize, &vec![byte; len as usize]);
                    Ok(())
                }
                None => {
                    let mut data = Vec::new();
                    write_at(&mut data, offset as usize, &vec![byte; len as usize]);
                    m.nodes.insert(p, Node::File(data, BTreeMap::new()));
                    Ok(())
                }
            }
        }
        Op::Truncate { path, size } => match m.nodes.get_mut(PATHS[path]) {
            Some(Node::File(data, _)) => {
                data.resize(size as usize, 0);
                Ok(())
            }
            Some(Node::Dir) => Err(libc::EISDIR),
            None => Err(libc::ENOENT),
        },
        Op::Unlink { path } => {
            let p = PATHS[path];
            if let Some(e) = m.parent_err(p) {
                return Some(Err(e));
            }
            match m.nodes.get(p) {
                Some(Node::Dir) => Err(libc::EISDIR),
                Some(Node::File(..)) => {
                    m.nodes.remove(p);
                    Ok(())
                }
                None => Err(libc::ENOENT),
            }
        }
        Op::Mkdir { path } => {
            let p = PATHS[path];
            if let Some(e) = m.parent_err(p) {
                return Some(Err(e));
            }
            if m.nodes.contains_key(p) {
                Err(libc::EEXIST)
            } else {
                m.nodes.insert(p.to_string(), Node::Dir);
                Ok(())
            }
        }
        Op::Rmdir { path } => {
            let p = PATHS[path];
            if let Some(e) = m.parent_err(p) {
                return Some(Err(e));
            }
            match m.nodes.get(p) {
                None => Err(libc::ENOENT),
                Some(Node::File(..)) => Err(libc::ENOTDIR),
                Some(Node::Dir) if !m.children(p).is_empty() => Err(libc::ENOTEMPTY),
                Some(Node::Dir) => {
                    m.nodes.remove(p);
                    Ok(())
                }
            }
        }
        Op::Rename { from, to, noreplace } => {
            let (f, t) = (PATHS[from], PATHS[to]);
            // As the kernel does: both parents first, then the source.
            if let Some(e) = m.parent_err(f).or_else(|| m.parent_err(t)) {
                return Some(Err(e));
            }
            let Some(src) = m.nodes.get(f).cloned() else {
                return Some(Err(libc::ENOENT));
            };
            let dst = m.nodes.get(t).cloned();
            if f == t {
                return Some(Ok(()));
            }
            if dst.is_some() && noreplace {
                return Some(Err(libc::EEXIST));
            }
            match (&src, &dst) {
                (Node::Dir, _) if t.starts_with(&format!("{f}/")) => return Some(Err(libc::EINVAL)),
                (Node::File(..), Some(Node::Dir)) => return Some(Err(libc::EISDIR)),
                (Node::Dir, Some(Node::File(..))) => return Some(Err(libc::ENOTDIR)),
                (Node::Dir, Some(Node::Dir)) if !m.children(t).is_empty() => return Some(Err(libc::ENOTEMPTY)),
                _ => {}
            }
            if matches!(src, Node::Dir) && f.starts_with(&format!("{t}/")) {
                return None; // moving a directory onto its own ancestor: not modelled
            }
            let moved: Vec<String> = std::iter::once(f.to_string()).chain(m.children(f)).collect();
            let entries: Vec<(String, Node)> = moved
                .iter()
                .filter_map(|k| m.nodes.remove(k).map(|n| (k.clone(), n)))
                .collect();
            for (k, n) in entries {
                m.nodes.insert(format!("{t}{}", &k[f.len()..]), n);
            }
            Ok(())
        }
        Op::SetX { path, key, value } => match m.nodes.get_mut(PATHS[path]) {
            Some(Node::File(_, x)) => {
                x.insert(format!("k{key}"), format!("v{value}"));
                Ok(())
            }
            Some(Node::Dir) => Err(libc::ENOTSUP),
            None => Err(libc::ENOENT),
        },
        Op::RemoveX { path, key } => match m.nodes.get_mut(PATHS[path]) {
            Some(Node::File(_, x)) => {
                if x.remove(&format!("k{key}")).is_some() {
                    Ok(())
                } else {
                    Err(libc::ENODATA)
                }
            }
            Some(Node::Dir) => Err(libc::ENODATA),
            None => Err(libc::ENOENT),
        },
        Op::Chmod { path, mode } => match m.nodes.get_mut(PATHS[path]) {
            Some(Node::File(_, x)) => {
                set_mode(x, mode);
                Ok(())
            }
            // Kept in the directory's marker, which the model does not show.
            Some(Node::Dir) => Ok(()),
            None => Err(libc::ENOENT),
        },
        Op::OobPut { path, len, byte } => {
            let p = PATHS[path];
            // Another client writes a file where this mount has a parent directory and no directory.
            if !m.dir_exists(parent(p)) || matches!(m.nodes.get(p), Some(Node::Dir)) {
                return None;
            }
            m.nodes
                .insert(p.to_string(), Node::File(vec![byte; len as usize], BTreeMap::new()));
            Ok(())
        }
        Op::OobDelete { path } => {
            let p = PATHS[path];
            if !matches!(m.nodes.get(p), Some(Node::File(..))) {
                return None;
            }
            m.nodes.remove(p);
            Ok(())
        }
    })
}

/// A file's permission bits other than the 0644 every file starts with, shown with its user
/// metadata under "mode" (in octal).
fn set_mode(x: &mut BTreeMap<String, String>, mode: u16) {
    if mode & 0o7777 == 0o644 {
        x.remove("mode");
    } else {
        x.insert("mode".into(), format!("{:o}", mode & 0o7777));
    }
}

fn write_at(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if data.len() < offset + bytes.len() {
        data.resize(offset + bytes.len(), 0);
    }
    data[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// The filesystem's whole tree as the model sees it.
async fn snapshot<S: Mem>(fs: &S3Fs<S>) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![(String::new(), ROOT_INO)];
    while let Some((path, ino)) = dirs.pop() {
        let fh = fs.opendir(ino).await.expect("opendir").fh;
        // As the kernel does: readdir again from the last offset until an empty answer.
        let mut c = Collect(Vec::new(), 0);
        loop {
            let before = c.1;
            fs.readdir(fh, before, &mut c).await.expect("readdir");
            if c.1 == before {
                break;
            }
        }
        fs.releasedir(fh);
        for (n, _) in c.0 {
            let child = if path.is_empty() {
                n.clone()
            } else {
                format!("{path}/{n}")
            };
            let e = fs.lookup(ino, OsStr::new(&n)).await.expect("lookup of a listed name");
            match e.attr.kind {
                Kind::Dir => {
                    out.insert(child.clone(), Node::Dir);
                    dirs.push((child, e.attr.ino));
                }
                _ => {
                    let fh = fs.open(e.attr.ino, libc::O_RDONLY, 1).await.expect("open");
                    let data = fs.read(fh, 0, 1 << 20).await.expect("read").to_vec();
                    fs.release(fh).await.expect("release");
                    let mut x = BTreeMap::new();
                    for k in ["k0", "k1"] {
                        if let Ok(v) = fs.getxattr(e.attr.ino, OsStr::new(&format!("user.{k}"))).await {
                            x.insert(k.to_string(), String::from_utf8_lossy(&v).into_owned());
                        }
                    }
                    set_mode(&mut x, e.attr.perm);
                    assert_eq!(e.attr.size, data.len() as u64, "size of {child}");
                    out.insert(child, Node::File(data, x));
                }
            }
        }
    }
    out
}

fn fs_config() -> FsConfig {
    FsConfig {
        metadata_ttl: Duration::ZERO,
        upload: UploadConfig {
            part_size: 5 * 1024 * 1024,
            concurrency: 2,
            staging_dir: std::env::temp_dir(),
        },
        ..FsConfig::default()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let fs = S3Fs::new(Arc::new(MemoryStore::with_page_size(2)), fs_config());
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            let Some(want) = apply_model(&mut model, op) else {
                continue;
            };
            let got = apply_fs(&fs, op).await;
            prop_assert_eq!(got, want, "step {}: {:?}", i, op);
            let tree = snapshot(&fs).await;
            prop_assert_eq!(&tree, &model.nodes, "tree after step {}: {:?}", i, op);
        }
        Ok(())
    })
}

/// `PROPTEST_CASES` when set (a longer hunt), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 2000, ..ProptestConfig::with_cases(cases(1000)) })]

    #[test]
    fn filesystem_matches_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}

// The same model over a mount with a write cache (`--write-cache`): closes return once the file
// is durable in the cache and uploads happen behind them; the server goes down and comes back;
// uploads are slow, so they are in flight while later operations run; and the daemon crashes
// (every task stops where it is, nothing is drained) and a new mount starts over the same bucket
// and cache directory. After every step the mount shows the model; after a sync with the server
// up, the bucket holds the model too; after a crash nothing a close or another change acknowledged
// is lost.

/// A step of the write-cache test.
#[derive(Clone, Debug)]
enum Step {
    Fs(Op),
    /// The daemon dies where it is and a new mount of the same bucket and cache directory starts
    /// (reinstating what the cache holds). The server stays as it was.
    Crash,
    /// Uploads fail as on an unreachable server (PutObject and multipart); with `all_writes`,
    /// CopyObject and DeleteObject too. Reads still work.
    ServerDown {
        all_writes: bool,
    },
    ServerUp,
    /// PutObject takes `ms` (of the paused clock): background uploads stay in flight while later
    /// operations run. 0: at once.
    SlowPuts {
        ms: u8,
    },
    /// Let the background uploads run: `ms` of the paused clock, or a few yields when 0.
    Idle {
        ms: u8,
    },
    /// `sync DIR` of the root (fsyncdir), or the unmount's drain (when no failed upload waits for
    /// its retry, which is seconds of the real clock away; else fsyncdir).
    Sync {
        drain: bool,
    },
}

/// The operations of [`op`], more of them on files (writes, renames, deletes) than on
/// directories, and chmod (the mode shows with the user metadata, see [`set_mode`]).
fn file_op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        3 => op(),
        3 => (p.clone(), 0u16..3000, 0u16..2000, any::<u8>(), any::<bool>())
            .prop_map(|(path, offset, len, byte, trunc)| Op::Write { path, offset, len, byte, trunc }),
        1 => (p.clone(), p.clone(), any::<bool>()).prop_map(|(from, to, noreplace)| Op::Rename { from, to, noreplace }),
        1 => p.clone().prop_map(|path| Op::Unlink { path }),
        1 => (p, proptest::sample::select(vec![0o600u16, 0o640, 0o644, 0o755]))
            .prop_map(|(path, mode)| Op::Chmod { path, mode }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        14 => file_op().prop_map(Step::Fs),
        2 => Just(Step::Crash),
        1 => any::<bool>().prop_map(|all_writes| Step::ServerDown { all_writes }),
        1 => Just(Step::ServerUp),
        1 => prop_oneof![Just(0u8), 1u8..50].prop_map(|ms| Step::SlowPuts { ms }),
        2 => prop_oneof![Just(0u8), 1u8..100].prop_map(|ms| Step::Idle { ms }),
        2 => any::<bool>().prop_map(|drain| Step::Sync { drain }),
    ]
}

type Faulty = FaultStore<MemoryStore>;

/// What an unreachable server fails.
const UPLOADS: &[&str] = &[
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
];
const OTHER_WRITES: &[&str] = &["CopyObject", "UploadPartCopy", "DeleteObject"];

fn cache_config(dir: &std::path::Path) -> WriteCacheConfig {
    WriteCacheConfig {
        dir: dir.to_path_buf(),
        max_size: 1 << 30,
        max_file: 64 << 20,
        max_files: 10_000,
        uploads: 2,
        // Only a lost count would reach it (the test drains only when nothing waits to be retried).
        drain_deadline: Some(Duration::from_secs(5)),
    }
}

/// The cache directory: entries are synced at every close, so on tmpfs when there is one.
fn cache_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new().prefix("reftest-wc").tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

/// Entries in the cache directory.
fn entries(dir: &std::path::Path) -> usize {
    walkdir(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "wc"))
        .count()
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A running daemon: its own runtime (one thread and a paused clock, so which background step
/// runs when is decided by the steps alone and a shrunk failure replays, up to the order of the
/// filesystem's HashMaps) and its filesystem.
struct Mount {
    rt: tokio::runtime::Runtime,
    fs: Arc<S3Fs<Faulty>>,
}

impl Mount {
    fn start(store: &Arc<Faulty>, dir: &std::path::Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("rt");
        let fs = rt.block_on(async {
            let fs = Arc::new(S3Fs::new(store.clone(), fs_config()));
            let (cache, left) = WriteCache::open(cache_config(dir), "mem", "bucket").expect("open the cache");
            fs.attach_write_cache(cache, left);
            fs
        });
        Self { rt, fs }
    }

    /// Run `f` on the daemon's runtime; a deadlock (nothing left to run, no timer but this
    /// one) is reported rather than hanging the test.
    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(24 * 3600), f).await })
            .expect("deadlock: the operation never finished")
    }

    /// The process dies: every task stops at the point it reached, nothing is drained.
    fn crash(self) {
        let Self { rt, fs } = self;
        {
            let _in = rt.enter();
            drop(fs);
        }
        drop(rt);
    }
}

/// The bucket as the model sees it: markers are directories, other keys files with their user
/// metadata.
fn bucket(m: &MemoryStore) -> BTreeMap<String, Node> {
    m.keys()
        .into_iter()
        .map(|k| match k.strip_suffix('/') {
            Some(d) => (d.to_string(), Node::Dir),
            None => {
                let meta = m.metadata(&k).unwrap_or_default();
                let mut x = meta
                    .iter()
                    .filter(|(n, _)| *n == "k0" || *n == "k1")
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                let mode = meta.get("mode").and_then(|v| v.parse::<u32>().ok()).unwrap_or(0o644);
                set_mode(&mut x, (mode & 0o7777) as u16);
                let body = m.body(&k).unwrap_or_default().to_vec();
                (k, Node::File(body, x))
            }
        })
        .collect()
}

/// Paths whose latest version may be only in the write cache after `op` succeeded (another
/// client's writes there would race with its upload, which the model does not describe).
fn touch(dirty: &mut BTreeSet<String>, op: &Op) {
    let under = |p: &str, d: &str| p == d || p.starts_with(&format!("{d}/"));
    match *op {
        Op::Write { path, .. } | Op::Truncate { path, .. } | Op::SetX { path, .. } | Op::RemoveX { path, .. } => {
            dirty.insert(PATHS[path].to_string());
        }
        Op::Unlink { path } => {
            dirty.remove(PATHS[path]);
        }
        Op::Rename { from, to, .. } if from != to => {
            let (f, t) = (PATHS[from], PATHS[to]);
            dirty.retain(|p| !under(p, t));
            let moved: Vec<String> = dirty.iter().filter(|p| under(p, f)).cloned().collect();
            for p in moved {
                dirty.remove(&p);
                dirty.insert(format!("{t}{}", &p[f.len()..]));
            }
        }
        _ => {}
    }
}

/// Versions of files a crash may bring back instead of the current one. A chmod of a file waiting
/// in the write cache, with no handle open, is written to a new entry shortly after (by its
/// upload, so that the mode, owner and times `tar x` sets one call after another share it), not
/// before the call returns: until then a crash brings back the version of the file's last entry,
/// or one its upload has written since. So after a chmod of a file that may be waiting (in
/// `dirty`), the version before it is kept here, until a change that makes an entry at once (a
/// close, a truncate, user metadata), a sync, a move or a delete leaves only the current one.
#[derive(Default)]
struct Unsynced(BTreeMap<String, Vec<Node>>);

impl Unsynced {
    fn after(&mut self, before: &Model, dirty: &BTreeSet<String>, op: &Op) {
        let under = |p: &str, d: &str| p == d || p.starts_with(&format!("{d}/"));
        match *op {
            Op::Chmod { path, .. } => {
                let p = PATHS[path];
                if let (true, Some(old @ Node::File(..))) = (dirty.contains(p), before.nodes.get(p)) {
                    self.0.entry(p.to_string()).or_default().push(old.clone());
                }
            }
            Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::SetX { path, .. }
            | Op::RemoveX { path, .. }
            | Op::Unlink { path } => {
                self.0.remove(PATHS[path]);
            }
            // A moved file is stored or written to a new entry first; a moved directory's files
            // are stored first.
            Op::Rename { from, to, .. } if from != to => {
                let (f, t) = (PATHS[from], PATHS[to]);
                self.0.retain(|p, _| !under(p, f) && !under(p, t));
            }
            _ => {}
        }
    }

    /// After a crash the mount shows `tree`, in which a file may show one of its versions here
    /// instead of the model's: the model takes it (the check after the step compares the rest).
    fn crashed(&mut self, model: &mut Model, tree: &BTreeMap<String, Node>) {
        for (p, versions) in std::mem::take(&mut self.0) {
            if let Some(shown) = tree.get(&p).filter(|shown| versions.contains(shown)) {
                model.nodes.insert(p, shown.clone());
            }
        }
    }
}

fn run_cached(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = cache_dir();
    let store = Arc::new(FaultStore::new(MemoryStore::with_page_size(2)));
    let mut mount = Some(Mount::start(&store, dir.path()));
    let mut model = Model::default();
    let mut dirty = BTreeSet::new();
    // The server is down (`Some(all_writes)`).
    let mut down: Option<bool> = None;
    // Since the last sync, uploads may have failed: retries wait in the queue (seconds of the
    // real clock), so the test does not drain then but syncs first.
    let mut retries = false;
    let mut unsynced = Unsynced::default();
    for (i, step) in steps.iter().enumerate() {
        let m = mount.as_ref().expect("mounted");
        match step {
            Step::Fs(op) => {
                if let Op::OobPut { path, .. } | Op::OobDelete { path } = op {
                    if dirty.contains(PATHS[*path]) {
                        continue;
                    }
                }
                let mut after = model.clone();
                let Some(want) = apply_model(&mut after, op) else {
                    continue;
                };
                let got = m.run(apply_fs(&m.fs, op));
                if down.is_some() && got == Err(libc::EIO) {
                    // Refused for want of the server: nothing changed (the tree check below).
                } else {
                    prop_assert_eq!(got, want, "step {}: {:?}", i, op);
                    if got.is_ok() {
                        unsynced.after(&model, &dirty, op);
                        touch(&mut dirty, op);
                    }
                    model = after;
                }
            }
            Step::Crash => {
                mount.take().expect("mounted").crash();
                mount = Some(Mount::start(&store, dir.path()));
                retries = down.is_some();
                let m = mount.as_ref().expect("mounted");
                unsynced.crashed(&mut model, &m.run(snapshot(&m.fs)));
            }
            Step::ServerDown { all_writes } => {
                store.heal();
                for op in UPLOADS.iter().chain(if *all_writes { OTHER_WRITES } else { &[] }) {
                    store.fail(op, 0, usize::MAX);
                }
                down = Some(*all_writes);
                retries = true;
            }
            Step::ServerUp => {
                store.heal();
                down = None;
            }
            Step::SlowPuts { ms } => store.delay_puts(Duration::from_millis(u64::from(*ms))),
            Step::Idle { ms } => m.run(async {
                if *ms == 0 {
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
                }
            }),
            Step::Sync { drain } => {
                let drained = *drain && down.is_none() && !retries;
                let got = m.run(async {
                    if drained {
                        match m.fs.drain().await {
                            0 => Ok(()),
                            n => Err(n as i32),
                        }
                    } else {
                        errno(m.fs.fsyncdir(ROOT_INO).await)
                    }
                });
                if down.is_some() {
                    prop_assert!(
                        got.is_ok() || got == Err(libc::EIO),
                        "step {}: {:?}: {:?}",
                        i,
                        step,
                        got
                    );
                } else {
                    // From a drain, `Err(n)`: n files left at its deadline.
                    prop_assert_eq!(got, Ok(()), "step {}: {:?} (drained: {})", i, step, drained);
                    prop_assert_eq!(entries(dir.path()), 0, "entries left after step {}: {:?}", i, step);
                    prop_assert_eq!(
                        &bucket(store.inner()),
                        &model.nodes,
                        "bucket after step {}: {:?}",
                        i,
                        step
                    );
                    dirty.clear();
                    unsynced = Unsynced::default();
                    retries = false;
                }
            }
        }
        let m = mount.as_ref().expect("mounted");
        let tree = m.run(snapshot(&m.fs));
        prop_assert_eq!(&tree, &model.nodes, "tree after step {}: {:?}", i, step);
    }
    // The server comes back and the mount syncs: the bucket is the model, the cache empty.
    store.heal();
    store.delay_puts(Duration::ZERO);
    let m = mount.take().expect("mounted");
    prop_assert_eq!(
        m.run(m.fs.fsyncdir(ROOT_INO)).map_err(|e| e.errno),
        Ok(()),
        "final sync"
    );
    prop_assert_eq!(entries(dir.path()), 0, "entries left after the final sync");
    prop_assert_eq!(&bucket(store.inner()), &model.nodes, "bucket after the final sync");
    m.crash();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 4000, ..ProptestConfig::with_cases(cases(300)) })]

    #[test]
    fn a_mount_with_a_write_cache_matches_the_model_across_outages_and_crashes(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        run_cached(steps)?;
    }
}

// The sequences that found bugs, kept whatever the strategy above generates.

fn write(path: usize, len: u16, byte: u8) -> Step {
    Step::Fs(Op::Write {
        path,
        offset: 0,
        len,
        byte,
        trunc: true,
    })
}

#[test]
fn an_unlink_the_server_refuses_leaves_the_pending_file_as_it_was() {
    // The unlink dropped the file's entry, then failed to delete the object: EIO, and the file
    // was gone (or back to its stored version), its last close lost.
    run_cached(vec![
        write(7, 3, 1),
        Step::Sync { drain: false },
        write(7, 2, 2),
        Step::ServerDown { all_writes: true },
        Step::Fs(Op::Unlink { path: 7 }),
    ])
    .expect("model");
}

#[test]
fn a_listing_while_a_pending_file_is_uploaded_shows_it() {
    // The listing's first page came before the upload, its end after the file left the open
    // files: `a` was in neither.
    run_cached(vec![
        write(0, 0, 0),
        Step::Fs(Op::Mkdir { path: 2 }),
        Step::SlowPuts { ms: 1 },
        Step::Fs(Op::OobPut {
            path: 1,
            len: 0,
            byte: 0,
        }),
        Step::Fs(Op::Mkdir { path: 7 }),
    ])
    .expect("model");
}

#[test]
fn a_close_after_a_failed_truncate_reports_no_error_once_the_file_is_in_the_cache() {
    // The truncate's upload failed (EIO, reported); the next write's close kept the file in the
    // cache but reported that failure again: EIO for a close whose data was kept.
    run_cached(vec![
        write(7, 0, 0),
        Step::Idle { ms: 0 },
        Step::ServerDown { all_writes: false },
        Step::Fs(Op::Truncate { path: 7, size: 1 }),
        write(7, 1, 0),
    ])
    .expect("model");
}

#[test]
fn a_rename_over_a_file_being_uploaded_keeps_the_moved_file() {
    // The replaced file's upload, in flight, landed after the copy: the moved file's contents
    // were lost under the replaced file's.
    run_cached(vec![
        Step::SlowPuts { ms: 1 },
        write(7, 0, 0),
        Step::Crash,
        write(2, 1, 0),
        Step::Fs(Op::Rename {
            from: 7,
            to: 2,
            noreplace: false,
        }),
    ])
    .expect("model");
}

#[test]
fn a_rename_of_a_file_written_again_after_an_unlink_moves_the_new_one() {
    // The inode table moved the unlinked file's inode (which the kernel still holds) along with
    // the new one, and which of them the new name led to depended on a HashMap's order: half the
    // time the moved pending file was not seen. Run a few times for that reason.
    for _ in 0..10 {
        run_cached(vec![
            write(7, 2, 1),
            Step::Fs(Op::Unlink { path: 7 }),
            write(7, 3, 2),
            Step::Fs(Op::Rename {
                from: 7,
                to: 0,
                noreplace: true,
            }),
        ])
        .expect("model");
    }
}

#[test]
fn a_file_moved_over_a_stored_one_and_moved_again_leaves_nothing_behind() {
    // A file never stored moves by moving its entry; moved over a stored file it was still taken
    // for one with no object, so its next move left the replaced object behind: `a` came back.
    run_cached(vec![
        write(0, 2, 1),
        Step::Sync { drain: false },
        write(1, 3, 2),
        Step::Fs(Op::Rename {
            from: 1,
            to: 0,
            noreplace: false,
        }),
        Step::Fs(Op::Rename {
            from: 0,
            to: 7,
            noreplace: false,
        }),
    ])
    .expect("model");
}

#[test]
fn a_directory_moved_over_one_holding_only_a_pending_file_is_refused() {
    // The target's emptiness was asked of S3 alone, where the pending file was not yet: the
    // rename succeeded, and d2 held b's contents and its own pending file.
    run_cached(vec![
        Step::Fs(Op::Mkdir { path: 1 }),
        Step::Fs(Op::Mkdir { path: 7 }),
        write(8, 0, 0),
        Step::Fs(Op::Rename {
            from: 1,
            to: 7,
            noreplace: false,
        }),
    ])
    .expect("model");
}

#[test]
fn a_file_reinstated_after_a_crash_keeps_its_mode_when_its_directory_is_listed() {
    // After the next mount, a listing took the stored object's attributes for the reinstated
    // file (it had no ETag to match), and its mode showed 0644 until it was uploaded.
    run_cached(vec![
        write(0, 0, 0),
        Step::Fs(Op::Chmod { path: 0, mode: 0o600 }),
        Step::Sync { drain: false },
        write(0, 1, 0),
        Step::Crash,
    ])
    .expect("model");
}

#[test]
fn a_truncate_of_a_file_waiting_in_the_cache_survives_a_crash() {
    // Kept from the proptest seed that found it (34080a0), whose case the strategy no longer
    // makes since chmod joined it: the truncate waited for the upload's entry, and the crash
    // brought back the version of the last close.
    run_cached(vec![
        Step::Fs(Op::Write {
            path: 2,
            offset: 0,
            len: 0,
            byte: 0,
            trunc: false,
        }),
        Step::ServerDown { all_writes: false },
        write(0, 0, 0),
        Step::Fs(Op::Truncate { path: 2, size: 1 }),
        Step::Crash,
    ])
    .expect("model");
}
