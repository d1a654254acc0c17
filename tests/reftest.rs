//! Reference-model test: random sequences of filesystem operations (create/write at offsets,
//! truncate, rename, unlink, mkdir, rmdir, setxattr/removexattr) and out-of-band PutObject /
//! DeleteObject by another client, applied to the filesystem layer over the in-memory store and to
//! a simple model; after every step the tree, every file's bytes, user metadata and every errno
//! must agree. Failing cases are kept in proptest-regressions/.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::write::UploadConfig;
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

#[derive(Default, Debug)]
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
    if let Op::Truncate { path, .. } | Op::SetX { path, .. } | Op::RemoveX { path, .. } = op {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn filesystem_matches_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}
