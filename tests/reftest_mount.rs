//! Differential test on a real mount: the same random sequence of file operations on a local
//! temporary directory and on the mount (each case in its own directory), results (errno) and the
//! resulting trees compared after every step.

mod common;

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;
use proptest::prelude::*;

const PATHS: &[&str] = &["a", "b", "d1", "d1/a", "d1/b", "d1/d2", "d1/d2/a", "d2"];

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
        2 => (p.clone(), p).prop_map(|(from, to)| Op::Rename { from, to }),
    ]
}

fn apply(root: &Path, op: &Op) -> Result<(), i32> {
    let e = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error().unwrap_or(-1));
    match op.clone() {
        Op::Write {
            path,
            offset,
            len,
            byte,
            trunc,
        } => e((|| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(trunc)
                .open(root.join(PATHS[path]))?;
            f.seek(SeekFrom::Start(u64::from(offset)))?;
            f.write_all(&vec![byte; len as usize])?;
            f.sync_all()
        })()),
        Op::Truncate { path, size } => e((|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(root.join(PATHS[path]))?
                .set_len(u64::from(size))
        })()),
        Op::Unlink { path } => e(std::fs::remove_file(root.join(PATHS[path]))),
        Op::Mkdir { path } => e(std::fs::create_dir(root.join(PATHS[path]))),
        Op::Rmdir { path } => e(std::fs::remove_dir(root.join(PATHS[path]))),
        Op::Rename { from, to } => e(std::fs::rename(root.join(PATHS[from]), root.join(PATHS[to]))),
    }
}

fn tree(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = entry.path();
            let rel = p.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, None);
                stack.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).expect("read")));
            }
        }
    }
    out
}

#[test]
fn the_mount_behaves_like_a_local_directory() {
    let b = bucket("differential");
    let m = Mount::new(&b, &["--metadata-ttl", "0"]);
    let local = tempfile::tempdir().expect("local");
    let case = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 12,
        max_shrink_iters: 50,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest::test_runner::TestRunner::new(config)
        .run(&proptest::collection::vec(op(), 1..14), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (a, b) = (local.path().join(format!("c{n}")), m.path().join(format!("c{n}")));
            std::fs::create_dir(&a).expect("mkdir");
            std::fs::create_dir(&b).expect("mkdir");
            for (i, op) in ops.iter().enumerate() {
                let want = apply(&a, op);
                let got = apply(&b, op);
                prop_assert_eq!(got, want, "step {}: {:?}", i, op);
                prop_assert_eq!(tree(&b), tree(&a), "tree after step {}: {:?}", i, op);
            }
            Ok(())
        })
        .expect("the mount and the local directory agree");
}
