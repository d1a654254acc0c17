//! The write path without FUSE, over the in-memory store (wrapped to inject failures): what
//! reaches the bucket, which requests it took, and that failures reach the caller and leave the
//! original object intact.

use std::ffi::OsStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cosmount::fs::inode::{Kind, ROOT_INO};
use cosmount::fs::write::UploadConfig;
use cosmount::fs::{FsConfig, S3Fs, SetAttr, RENAME_NOREPLACE};
use cosmount::store::fault::FaultStore;
use cosmount::store::memory::MemoryStore;
use cosmount::store::ObjectStore;

const MIB: usize = 1024 * 1024;

fn fs() -> S3Fs<FaultStore<MemoryStore>> {
    let config = FsConfig {
        upload: UploadConfig {
            part_size: 5 * MIB as u64,
            concurrency: 4,
            staging_dir: std::env::temp_dir(),
        },
        ..FsConfig::default()
    };
    S3Fs::new(Arc::new(FaultStore::new(MemoryStore::new())), config)
}

fn mem(fs: &S3Fs<FaultStore<MemoryStore>>) -> &MemoryStore {
    fs.store().inner()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32 * 31 + u32::from(seed)) as u8).collect()
}

async fn write_file(fs: &S3Fs<FaultStore<MemoryStore>>, name: &str, body: &[u8]) -> u64 {
    let (e, fh) = fs
        .create(ROOT_INO, OsStr::new(name), 0o644, 1000, 1000, 1)
        .await
        .expect("create");
    for (i, chunk) in body.chunks(128 * 1024).enumerate() {
        fs.write(fh, (i * 128 * 1024) as u64, chunk).await.expect("write");
    }
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    e.attr.ino
}

#[tokio::test]
async fn small_file_is_one_put_with_posix_metadata_and_empty_files_exist() {
    let fs = fs();
    write_file(&fs, "a.txt", b"hello").await;
    assert_eq!(mem(&fs).body("a.txt").as_deref(), Some(&b"hello"[..]));
    assert_eq!(mem(&fs).counts.put.load(Ordering::Relaxed), 1);
    let meta = mem(&fs).metadata("a.txt").expect("meta");
    assert_eq!(meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(meta.get("uid").map(String::as_str), Some("1000"));
    assert!(
        !meta.contains_key("mtime"),
        "a written file's mtime is its Last-Modified"
    );
    write_file(&fs, "empty", b"").await;
    assert_eq!(mem(&fs).body("empty").map(|b| b.len()), Some(0));
}

#[tokio::test]
async fn large_file_is_a_parallel_multipart_upload() {
    let fs = fs();
    let body = data(23 * MIB + 7, 3);
    write_file(&fs, "big.bin", &body).await;
    assert_eq!(mem(&fs).body("big.bin").as_deref(), Some(&body[..]));
    assert_eq!(mem(&fs).counts.upload_part.load(Ordering::Relaxed), 5);
    assert_eq!(mem(&fs).counts.complete.load(Ordering::Relaxed), 1);
    assert_eq!(mem(&fs).pending_uploads(), 0);
}

#[tokio::test]
async fn append_to_a_large_object_copies_untouched_parts_server_side() {
    let fs = fs();
    let body = data(16 * MIB, 1);
    mem(&fs).insert("log", body.clone());
    let e = fs.lookup(ROOT_INO, OsStr::new("log")).await.expect("lookup");
    let fh = fs
        .open(e.attr.ino, libc::O_WRONLY | libc::O_APPEND, 1)
        .await
        .expect("open");
    fs.write(fh, body.len() as u64, b"tail").await.expect("write");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let mut want = body.clone();
    want.extend_from_slice(b"tail");
    assert_eq!(mem(&fs).body("log").as_deref(), Some(&want[..]));
    assert_eq!(
        mem(&fs).counts.upload_part_copy.load(Ordering::Relaxed),
        3,
        "three untouched 5 MiB parts copied"
    );
    assert_eq!(
        mem(&fs).counts.get.load(Ordering::Relaxed),
        1,
        "only the last, partly written chunk is fetched"
    );
}

#[tokio::test]
async fn random_write_truncate_and_reads_of_unflushed_data() {
    let fs = fs();
    let body = data(12 * MIB, 9);
    mem(&fs).insert("f", body.clone());
    let e = fs.lookup(ROOT_INO, OsStr::new("f")).await.expect("lookup");
    let fh = fs.open(e.attr.ino, libc::O_RDWR, 1).await.expect("open");
    fs.write(fh, 6 * MIB as u64 + 10, b"XYZ").await.expect("write");
    assert_eq!(
        &fs.read(fh, 6 * MIB as u64 + 9, 5).await.expect("read")[..],
        &[body[6 * MIB + 9], b'X', b'Y', b'Z', body[6 * MIB + 13]]
    );
    fs.setattr(
        e.attr.ino,
        Some(fh),
        SetAttr {
            atime: None,
            size: Some(7 * MIB as u64),
            ..Default::default()
        },
    )
    .await
    .expect("truncate");
    fs.setattr(
        e.attr.ino,
        Some(fh),
        SetAttr {
            atime: None,
            size: Some(7 * MIB as u64 + 100),
            ..Default::default()
        },
    )
    .await
    .expect("grow");
    assert_eq!(
        fs.getattr(e.attr.ino).await.expect("getattr").attr.size,
        7 * MIB as u64 + 100
    );
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let mut want = body[..7 * MIB].to_vec();
    want[6 * MIB + 10..6 * MIB + 13].copy_from_slice(b"XYZ");
    want.extend_from_slice(&[0u8; 100]);
    assert_eq!(mem(&fs).body("f").as_deref(), Some(&want[..]));
}

#[tokio::test]
async fn o_trunc_overwrite_and_truncate_of_a_closed_file() {
    let fs = fs();
    mem(&fs).insert("f", b"old contents".to_vec());
    let e = fs.lookup(ROOT_INO, OsStr::new("f")).await.expect("lookup");
    let fh = fs
        .open(e.attr.ino, libc::O_WRONLY | libc::O_TRUNC, 1)
        .await
        .expect("open");
    fs.write(fh, 0, b"new").await.expect("write");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    assert_eq!(mem(&fs).body("f").as_deref(), Some(&b"new"[..]));
    fs.setattr(
        e.attr.ino,
        None,
        SetAttr {
            atime: None,
            size: Some(1),
            ..Default::default()
        },
    )
    .await
    .expect("truncate");
    assert_eq!(mem(&fs).body("f").as_deref(), Some(&b"n"[..]));
}

#[tokio::test]
async fn failed_part_aborts_the_upload_keeps_the_original_and_reaches_close() {
    let fs = fs();
    let original = data(11 * MIB, 5);
    mem(&fs).insert("keep", original.clone());
    let e = fs.lookup(ROOT_INO, OsStr::new("keep")).await.expect("lookup");
    let fh = fs
        .open(e.attr.ino, libc::O_WRONLY | libc::O_TRUNC, 1)
        .await
        .expect("open");
    fs.write(fh, 0, &data(11 * MIB, 6)).await.expect("write");
    fs.store().fail("UploadPart", 1, 100);
    let err = fs.flush(fh, 1).await.unwrap_err();
    assert_eq!(err.errno, libc::EIO);
    assert_eq!(
        mem(&fs).body("keep").as_deref(),
        Some(&original[..]),
        "original untouched"
    );
    assert_eq!(mem(&fs).pending_uploads(), 0, "the multipart upload was aborted");
    assert!(fs.release(fh).await.is_err(), "the last close also reports the loss");
    // A failed small PutObject reaches close too, and creates nothing.
    fs.store().heal();
    fs.store().fail("PutObject", 0, 100);
    let (_, fh) = fs
        .create(ROOT_INO, OsStr::new("new"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    fs.write(fh, 0, b"x").await.expect("write");
    assert!(fs.flush(fh, 1).await.is_err());
    assert!(mem(&fs).body("new").is_none());
    let _ = fs.release(fh).await;
}

#[tokio::test]
async fn namespace_operations() {
    let fs = fs();
    let d = fs.mkdir(ROOT_INO, OsStr::new("d"), 0o755, 0, 0).await.expect("mkdir");
    assert!(mem(&fs).body("d/").is_some(), "mkdir writes a marker");
    assert_eq!(
        fs.mkdir(ROOT_INO, OsStr::new("d"), 0o755, 0, 0)
            .await
            .unwrap_err()
            .errno,
        libc::EEXIST
    );
    mem(&fs).insert("d/x", b"x".to_vec());
    assert_eq!(
        fs.rmdir(ROOT_INO, OsStr::new("d")).await.unwrap_err().errno,
        libc::ENOTEMPTY
    );
    // Rename a file over another; NOREPLACE refuses.
    mem(&fs).insert("a", b"A".to_vec());
    mem(&fs).insert("b", b"B".to_vec());
    assert_eq!(
        fs.rename(ROOT_INO, OsStr::new("a"), ROOT_INO, OsStr::new("b"), RENAME_NOREPLACE)
            .await
            .unwrap_err()
            .errno,
        libc::EEXIST
    );
    fs.rename(ROOT_INO, OsStr::new("a"), d.attr.ino, OsStr::new("b"), 0)
        .await
        .expect("rename");
    assert_eq!(mem(&fs).body("d/b").as_deref(), Some(&b"A"[..]));
    assert!(mem(&fs).body("a").is_none());
    // Rename a directory with more than a page of keys.
    for i in 0..1200 {
        mem(&fs).insert(&format!("d/many/{i}"), vec![1]);
    }
    fs.rename(ROOT_INO, OsStr::new("d"), ROOT_INO, OsStr::new("e"), 0)
        .await
        .expect("rename dir");
    let keys = mem(&fs).keys();
    assert!(keys.iter().all(|k| !k.starts_with("d/")), "sources deleted");
    assert_eq!(keys.iter().filter(|k| k.starts_with("e/many/")).count(), 1200);
    assert!(keys.contains(&"e/".to_string()) && keys.contains(&"e/b".to_string()) && keys.contains(&"e/x".to_string()));
    // unlink / ENOENT, symlink / readlink, link refused.
    fs.unlink(ROOT_INO, OsStr::new("b")).await.expect("unlink");
    assert_eq!(
        fs.unlink(ROOT_INO, OsStr::new("b")).await.unwrap_err().errno,
        libc::ENOENT
    );
    let l = fs
        .symlink(ROOT_INO, OsStr::new("link"), std::path::Path::new("e/x"), 0, 0)
        .await
        .expect("symlink");
    assert_eq!(l.attr.kind, Kind::Symlink);
    assert_eq!(&fs.readlink(l.attr.ino).await.expect("readlink")[..], b"e/x");
    assert_eq!(fs.link().unwrap_err().errno, libc::EPERM);
    let e = fs.lookup(ROOT_INO, OsStr::new("e")).await.expect("e");
    assert_eq!(
        fs.rename(ROOT_INO, OsStr::new("e"), e.attr.ino, OsStr::new("inside"), 0)
            .await
            .unwrap_err()
            .errno,
        libc::EINVAL
    );
}

#[tokio::test]
async fn chmod_chown_utimes_persist_in_metadata_keeping_content_type() {
    let fs = fs();
    write_file(&fs, "doc.pdf", b"%PDF").await;
    let e = fs.lookup(ROOT_INO, OsStr::new("doc.pdf")).await.expect("lookup");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    let set = SetAttr {
        atime: None,
        mode: Some(0o600),
        uid: Some(42),
        gid: Some(43),
        mtime: Some(when),
        size: None,
    };
    let after = fs.setattr(e.attr.ino, None, set).await.expect("setattr");
    assert_eq!(
        (after.attr.perm, after.attr.uid, after.attr.gid, after.attr.mtime),
        (0o600, 42, 43, when)
    );
    let head = fs.store().head_object("doc.pdf").await.expect("head");
    assert_eq!(head.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(head.metadata.get("mode").map(String::as_str), Some("33152"));
    assert_eq!(head.metadata.get("mtime").map(String::as_str), Some("1500000000"));
    assert_eq!(mem(&fs).body("doc.pdf").as_deref(), Some(&b"%PDF"[..]));
}

#[tokio::test]
async fn parts_stream_while_writing_and_rewritten_chunks_are_sent_again() {
    let fs = fs();
    let body = data(17 * MIB, 8);
    let (e, fh) = fs
        .create(ROOT_INO, OsStr::new("s.bin"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    let _ = e;
    for (i, chunk) in body.chunks(MIB).enumerate() {
        fs.write(fh, (i * MIB) as u64, chunk).await.expect("write");
    }
    // Before close: the three full 5 MiB parts behind the writer are on their way or up.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(mem(&fs).counts.create_multipart.load(Ordering::Relaxed), 1);
    assert_eq!(
        mem(&fs).counts.upload_part.load(Ordering::Relaxed),
        3,
        "parts stream while writing"
    );
    assert!(mem(&fs).body("s.bin").is_none(), "nothing visible before close");
    // Rewrite a byte of the first part: it must be sent again at close.
    fs.write(fh, 10, b"!").await.expect("write");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let mut want = body.clone();
    want[10] = b'!';
    assert_eq!(mem(&fs).body("s.bin").as_deref(), Some(&want[..]));
    assert_eq!(
        mem(&fs).counts.upload_part.load(Ordering::Relaxed),
        5,
        "3 streamed + part 1 again + the tail"
    );
    assert_eq!(mem(&fs).pending_uploads(), 0);
}

#[tokio::test]
async fn a_streamed_upload_of_a_deleted_file_is_aborted() {
    let fs = fs();
    let (_, fh) = fs
        .create(ROOT_INO, OsStr::new("gone"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    fs.write(fh, 0, &data(12 * MIB, 1)).await.expect("write");
    fs.unlink(ROOT_INO, OsStr::new("gone")).await.expect("unlink");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    assert!(mem(&fs).body("gone").is_none());
    assert_eq!(
        mem(&fs).pending_uploads(),
        0,
        "the streamed multipart upload was aborted"
    );
}

#[tokio::test]
async fn appends_through_the_in_memory_tail_match_a_model_under_reads_overwrites_and_truncates() {
    // Appends past the first part go to an in-memory tail until its part is complete; reads,
    // overwrites and truncates in between must see and keep every byte. Odd write sizes cross
    // part boundaries mid-write.
    let fs = fs();
    let (e, fh) = fs
        .create(ROOT_INO, OsStr::new("t.bin"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    let ino = e.attr.ino;
    let mut model: Vec<u8> = Vec::new();
    let piece = 700 * 1024 + 3;
    let mut seed = 0u8;
    let mut append = |model: &mut Vec<u8>, n: usize| {
        seed = seed.wrapping_add(1);
        let d = data(n, seed);
        model.extend_from_slice(&d);
        d
    };
    // 1. Plain appends to 12 MiB + a bit: the tail holds part 3's first bytes.
    while model.len() < 12 * MIB {
        let at = model.len() as u64;
        let d = append(&mut model, piece);
        fs.write(fh, at, &d).await.expect("append");
    }
    assert_eq!(fs.getattr(ino).await.expect("getattr").attr.size, model.len() as u64);
    // 2. A read across the end of part 2 and into the tail sees the bytes only the tail holds.
    let from = 10 * MIB - 5;
    let got = fs
        .read(fh, from as u64, (model.len() - from) as u32)
        .await
        .expect("read");
    assert_eq!(&got[..], &model[from..]);
    // 3. Appends again (the tail was written out by the read; the next part starts a new one),
    //    then an overwrite inside the tail's part and one in an earlier part.
    for _ in 0..6 {
        let at = model.len() as u64;
        let d = append(&mut model, piece);
        fs.write(fh, at, &d).await.expect("append");
    }
    let over = model.len() - 100;
    fs.write(fh, over as u64, b"tail-overwrite").await.expect("overwrite");
    model[over..over + 14].copy_from_slice(b"tail-overwrite");
    fs.write(fh, 3, b"head").await.expect("overwrite");
    model[3..7].copy_from_slice(b"head");
    // 4. Appends past the next part boundary and one more (the tail holds the last piece), a
    //    truncate inside the tail's part, then appends from the new end.
    let next_part = (model.len() / (5 * MIB) + 1) * 5 * MIB;
    while model.len() < next_part + piece {
        let at = model.len() as u64;
        let d = append(&mut model, piece);
        fs.write(fh, at, &d).await.expect("append");
    }
    let cut = model.len() - 1000;
    fs.setattr(
        ino,
        Some(fh),
        SetAttr {
            atime: None,
            size: Some(cut as u64),
            ..SetAttr::default()
        },
    )
    .await
    .expect("truncate");
    model.truncate(cut);
    for _ in 0..4 {
        let at = model.len() as u64;
        let d = append(&mut model, piece);
        fs.write(fh, at, &d).await.expect("append");
    }
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let stored = mem(&fs).body("t.bin").expect("stored");
    assert_eq!(stored.len(), model.len());
    assert!(stored[..] == model[..], "the object differs from what was written");
    assert_eq!(mem(&fs).pending_uploads(), 0);
}

#[tokio::test]
async fn a_rename_mid_write_restarts_the_upload_with_every_byte() {
    // Full parts are sent from memory and staged behind the writer. A rename mid-write abandons
    // the streamed upload: the new one must send the earlier parts from the staging file,
    // complete and in order.
    let fs = fs();
    let ino = write_file(&fs, "m.bin", b"old").await;
    let fh = fs.open(ino, libc::O_WRONLY | libc::O_TRUNC, 1).await.expect("open");
    // Whole parts per write, and the rename right after one: the part just completed is still
    // being staged when the new upload needs it from the staging file.
    let body = data(23 * MIB + 11, 9);
    let mut at = 0;
    for (step, chunk) in body.chunks(5 * MIB).enumerate() {
        fs.write(fh, at as u64, chunk).await.expect("write");
        at += chunk.len();
        if step == 2 {
            fs.rename(ROOT_INO, OsStr::new("m.bin"), ROOT_INO, OsStr::new("moved.bin"), 0)
                .await
                .expect("rename");
        }
    }
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let stored = mem(&fs).body("moved.bin").expect("stored under the new name");
    assert!(stored[..] == body[..], "the object differs from what was written");
    assert!(mem(&fs).body("m.bin").is_none());
    assert_eq!(mem(&fs).pending_uploads(), 0, "abandoned uploads are aborted");
}

#[tokio::test]
async fn user_attributes_set_while_a_file_is_open_for_writing_are_stored_with_it() {
    // A new file has no object yet, and an upload at close would undo a change made to the old
    // object: attributes set or removed while the file is open go with its upload.
    let fs = fs();
    let (e, fh) = fs
        .create(ROOT_INO, OsStr::new("n.txt"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    let ino = e.attr.ino;
    fs.write(fh, 0, b"draft").await.expect("write");
    fs.setxattr(ino, OsStr::new("user.note"), b"hi", 0)
        .await
        .expect("setxattr on a new file");
    assert_eq!(
        fs.getxattr(ino, OsStr::new("user.note")).await.expect("getxattr"),
        b"hi"
    );
    let err = fs
        .setxattr(ino, OsStr::new("user.note"), b"again", libc::XATTR_CREATE)
        .await
        .expect_err("XATTR_CREATE of an existing name");
    assert_eq!(err.errno, libc::EEXIST);
    let err = fs
        .setxattr(ino, OsStr::new("user.bad name"), b"x", 0)
        .await
        .expect_err("a name S3 cannot carry");
    assert_eq!(err.errno, libc::EINVAL);
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let meta = mem(&fs).metadata("n.txt").expect("stored");
    assert_eq!(meta.get("note").map(String::as_str), Some("hi"));
    // Rewritten: one attribute removed and one added while open, both kept at close.
    let fh = fs.open(ino, libc::O_WRONLY | libc::O_TRUNC, 1).await.expect("open");
    fs.write(fh, 0, b"final").await.expect("write");
    fs.removexattr(ino, OsStr::new("user.note")).await.expect("removexattr");
    fs.setxattr(ino, OsStr::new("user.state"), b"done", 0)
        .await
        .expect("setxattr");
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    assert_eq!(mem(&fs).body("n.txt").as_deref(), Some(&b"final"[..]));
    let meta = mem(&fs).metadata("n.txt").expect("stored");
    assert_eq!(meta.get("note"), None);
    assert_eq!(meta.get("state").map(String::as_str), Some("done"));
}

#[tokio::test]
async fn a_write_by_another_user_clears_set_user_id_and_times_follow_changes() {
    let fs = fs();
    let ino = write_file(&fs, "tool", b"#!/bin/sh\n").await;
    let set = |mode| SetAttr {
        atime: None,
        mode: Some(mode),
        uid: None,
        gid: None,
        mtime: None,
        size: None,
    };
    let before = fs.getattr(ino).await.expect("getattr").attr;
    let chmod = fs.setattr(ino, None, set(0o6755)).await.expect("chmod").attr;
    assert_eq!(chmod.perm, 0o6755);
    assert!(
        chmod.ctime >= before.ctime && chmod.mtime == before.mtime,
        "chmod moves ctime only"
    );
    // Root writing keeps the bits; anyone else clears set-user-ID, and set-group-ID since the
    // group may execute it.
    let fh = fs.open(ino, libc::O_WRONLY, 1).await.expect("open");
    fs.write_as(fh, 0, b"#", true).await.expect("root writes");
    assert_eq!(fs.getattr(ino).await.expect("getattr").attr.perm, 0o6755);
    fs.write_as(fh, 1, b"!", false).await.expect("a user writes");
    assert_eq!(fs.getattr(ino).await.expect("getattr").attr.perm, 0o755);
    fs.flush(fh, 1).await.expect("flush");
    fs.release(fh).await.expect("release");
    let meta = mem(&fs).metadata("tool").expect("meta");
    assert_eq!(
        meta.get("mode").map(String::as_str),
        Some(&*(libc::S_IFREG | 0o755).to_string())
    );
    assert!(
        !meta.contains_key("ctime"),
        "a written file's ctime is its upload time: {meta:?}"
    );
}

#[tokio::test]
async fn an_unlinked_open_file_still_has_attributes_with_no_links() {
    let fs = fs();
    let ino = write_file(&fs, "tmp", b"scratch").await;
    let fh = fs.open(ino, libc::O_RDONLY, 1).await.expect("open");
    fs.unlink(ROOT_INO, OsStr::new("tmp")).await.expect("unlink");
    let a = fs.getattr(ino).await.expect("fstat after unlink").attr;
    assert_eq!((a.size, a.nlink), (7, 0));
    assert!(fs.lookup(ROOT_INO, OsStr::new("tmp")).await.is_err());
    fs.release(fh).await.expect("release");
}

#[tokio::test]
async fn mknod_makes_empty_objects_whose_mode_says_what_they_are() {
    let fs = fs();
    for (name, mode, rdev, kind) in [
        ("fifo", libc::S_IFIFO | 0o640, 0, Kind::Fifo),
        ("sock", libc::S_IFSOCK | 0o755, 0, Kind::Socket),
        ("tty", libc::S_IFCHR | 0o620, 0x0400, Kind::CharDevice),
        ("disk", libc::S_IFBLK | 0o660, 0x0809, Kind::BlockDevice),
        ("plain", libc::S_IFREG | 0o600, 0, Kind::File),
    ] {
        let e = fs
            .mknod(ROOT_INO, OsStr::new(name), mode, rdev, 5, 6)
            .await
            .expect("mknod");
        assert_eq!(
            (e.attr.kind, e.attr.perm, e.attr.rdev),
            (kind, (mode & 0o7777) as u16, rdev),
            "{name}"
        );
        assert_eq!(mem(&fs).body(name).as_deref(), Some(&b""[..]), "{name}");
        let meta = mem(&fs).metadata(name).expect("meta");
        assert_eq!(meta.get("mode"), Some(&mode.to_string()), "{name}");
        assert_eq!(meta.contains_key("rdev"), rdev != 0, "{name}: {meta:?}");
        assert!(fs.open(e.attr.ino, libc::O_RDONLY, 1).await.is_err() || kind == Kind::File);
    }
    let again = fs
        .mknod(ROOT_INO, OsStr::new("fifo"), libc::S_IFIFO | 0o644, 0, 0, 0)
        .await;
    assert_eq!(again.map(|_| ()).map_err(|e| e.errno), Err(libc::EEXIST));
    let dir = fs
        .mknod(ROOT_INO, OsStr::new("d"), libc::S_IFDIR | 0o755, 0, 0, 0)
        .await;
    assert_eq!(dir.map(|_| ()).map_err(|e| e.errno), Err(libc::EINVAL));
}

/// `echo one >> f; echo two >> f`: the kernel sends the first handle's RELEASE after its close
/// returned, so the second open can arrive while the first close is still storing the file. The
/// second handle must end up on an open file that is still there (it used to join the one being
/// dropped, and its write failed with EBADF).
#[tokio::test]
async fn an_open_during_the_last_release_of_the_file_waits_and_opens_the_stored_object() {
    let fs = Arc::new(fs());
    let (e, fh1) = fs
        .create(ROOT_INO, OsStr::new("log"), 0o644, 0, 0, 1)
        .await
        .expect("create");
    fs.write(fh1, 0, b"one\n").await.expect("write");
    fs.store().delay_puts(std::time::Duration::from_millis(300));
    let releasing = {
        let fs = fs.clone();
        tokio::spawn(async move { fs.release(fh1).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let fh2 = fs
        .open(e.attr.ino, libc::O_WRONLY | libc::O_APPEND, 2)
        .await
        .expect("open while the release stores");
    releasing.await.expect("join").expect("the first close stores");
    fs.store().delay_puts(std::time::Duration::ZERO);
    fs.write(fh2, 4, b"two\n").await.expect("the second handle writes");
    fs.release(fh2).await.expect("the second close stores");
    assert_eq!(mem(&fs).body("log").as_deref(), Some(&b"one\ntwo\n"[..]));
}
