//! Real-mount tests of the write path: cp, rsync, tar, git, editors and shell redirections on a
//! mount of the built binary, with the bucket's state checked through the S3 API.

mod common;

use std::io::Write;
use std::path::Path;

use common::proxy::Proxy;
use common::*;

fn q(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// After failed writes of `big.bin` (new) and `precious` (holding "good data"): neither is
/// stored partially, no multipart upload is left (aborts may be retried for a while), and the
/// mount still stores files.
fn nothing_partial_and_still_working(b: &str, m: &Mount) {
    assert!(head(b, "big.bin").is_none(), "no partial object");
    assert_eq!(
        get(b, "precious").expect("object"),
        b"good data",
        "the original is intact"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while multipart_uploads(b) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(multipart_uploads(b), 0, "no multipart upload left behind");
    std::fs::write(m.p("after"), b"ok").expect("write");
    assert_eq!(get(b, "after").expect("object"), b"ok");
}

#[test]
fn cp_r_and_cp_a_of_a_tree_then_diff() {
    let b = bucket("cp");
    let src = tempfile::tempdir().expect("src");
    make_tree(src.path(), 300);
    let m = Mount::new(&b, &[]);
    sh_ok(&format!("cp -r {}/. {}", q(src.path()), m.p("r")));
    sh_ok(&format!("cp -a {}/. {}", q(src.path()), m.p("a")));
    sh_ok(&format!("diff -r --no-dereference {} {}", q(src.path()), m.p("r")));
    sh_ok(&format!("diff -r --no-dereference {} {}", q(src.path()), m.p("a")));
    // The bucket holds every file, the empty directory's marker and the symlink.
    let a_keys = keys(&b, "a/");
    assert_eq!(a_keys.iter().filter(|k| k.ends_with(".txt")).count(), 300);
    assert!(a_keys.contains(&"a/empty-dir/".to_string()));
    let (_, _, meta) = head(&b, "a/link").expect("link object");
    assert_eq!(
        meta.get("mode").map(String::as_str),
        Some("41471"),
        "symlink mode is S_IFLNK|0777"
    );
    assert_eq!(get(&b, "a/link").expect("body"), b"d0/sub0/file0.txt");
    // cp -a kept mtimes (seconds and nanoseconds) and modes.
    for f in ["d1/sub1/file1.txt", "d3/sub0/file3.txt"] {
        let want = sh_ok(&format!("stat -c '%y %a' {}/{f}", q(src.path())));
        assert_eq!(
            sh_ok(&format!("stat -c '%y %a' {}", m.p(&format!("a/{f}")))),
            want,
            "{f}"
        );
    }
}

#[test]
fn second_rsync_transfers_nothing_and_a_changed_file_is_updated() {
    let b = bucket("rsync");
    let src = tempfile::tempdir().expect("src");
    make_tree(src.path(), 120);
    let m = Mount::new(&b, &[]);
    let run = || sh_ok(&format!("rsync -a --stats {}/ {}/", q(src.path()), m.p("dst")));
    let first = run();
    assert!(first.contains("Number of regular files transferred: 120"), "{first}");
    let second = run();
    assert!(second.contains("Number of regular files transferred: 0"), "{second}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(src.path().join("d2/sub2/file2.txt"), b"changed").expect("write");
    let third = run();
    assert!(third.contains("Number of regular files transferred: 1"), "{third}");
    assert_eq!(get(&b, "dst/d2/sub2/file2.txt").expect("object"), b"changed");
    // Across a remount too (attributes come from the bucket, not from memory).
    drop(m);
    let m = Mount::new(&b, &[]);
    // ...and writing nothing: no object (file or directory marker) is stored again, which on a
    // retention bucket would fail.
    let stamps = || -> Vec<(String, String)> {
        keys(&b, "dst/")
            .into_iter()
            .map(|k| {
                let o = rt()
                    .block_on(client().head_object().bucket(&b).key(&k).send())
                    .expect("head");
                let stamp = format!("{:?} {:?}", o.last_modified(), o.e_tag());
                (k, stamp)
            })
            .collect()
    };
    let before = stamps();
    assert!(
        before.iter().any(|(k, _)| k.ends_with('/')),
        "directory markers exist: {before:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = sh_ok(&format!("rsync -a --stats {}/ {}/", q(src.path()), m.p("dst")));
    assert!(again.contains("Number of regular files transferred: 0"), "{again}");
    assert_eq!(stamps(), before, "the unchanged tree was not written to");
}

#[test]
fn tar_extract_and_git_repository() {
    let b = bucket("tar-git");
    let src = tempfile::tempdir().expect("src");
    make_tree(src.path(), 60);
    let tarball = src.path().with_extension("tar");
    sh_ok(&format!("tar cf {} -C {} .", q(&tarball), q(src.path())));
    let m = Mount::new(&b, &[]);
    sh_ok(&format!("mkdir {0} && tar xf {1} -C {0}", m.p("x"), q(&tarball)));
    sh_ok(&format!("diff -r --no-dereference {} {}", q(src.path()), m.p("x")));
    let _ = std::fs::remove_file(&tarball);
    let git = format!(
        "set -e; mkdir {0}; cd {0}; git init -q; git config user.email t@example.com; git config user.name T; \
         echo one > f.txt; git add f.txt; git commit -qm first; echo two >> f.txt; git commit -qam second; \
         git fsck --strict 2>&1; git log --oneline | wc -l",
        m.p("repo")
    );
    let out = sh_ok(&git);
    assert!(out.trim().ends_with('2'), "{out}");
    assert_eq!(std::fs::read(m.p("repo/f.txt")).expect("read"), b"one\ntwo\n");
}

#[test]
fn editor_save_append_truncate_and_dd_in_the_middle_of_a_multipart_file() {
    let b = bucket("edit");
    let m = Mount::new(&b, &["--part-size", "5"]);
    // Editor-style save: write a temporary file, rename it over the original.
    std::fs::write(m.p("notes.txt"), b"draft\n").expect("write");
    std::fs::write(m.p(".notes.txt.swp"), b"final\n").expect("write");
    std::fs::rename(m.p(".notes.txt.swp"), m.p("notes.txt")).expect("rename");
    assert_eq!(get(&b, "notes.txt").expect("object"), b"final\n");
    assert!(get(&b, ".notes.txt.swp").is_none());
    // Append.
    sh_ok(&format!("echo appended >> {}", m.p("notes.txt")));
    assert_eq!(get(&b, "notes.txt").expect("object"), b"final\nappended\n");
    // truncate -s grow and shrink.
    sh_ok(&format!("truncate -s 100 {}", m.p("notes.txt")));
    let mut want = b"final\nappended\n".to_vec();
    want.resize(100, 0);
    assert_eq!(get(&b, "notes.txt").expect("object"), want);
    sh_ok(&format!("truncate -s 3 {}", m.p("notes.txt")));
    assert_eq!(get(&b, "notes.txt").expect("object"), b"fin");
    // dd conv=notrunc into the middle of a 12 MiB (three-part) file.
    let local = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(local.path(), pattern(12 * 1024 * 1024, 4)).expect("write");
    sh_ok(&format!("cp {} {}", q(local.path()), m.p("big.bin")));
    let patch = "dd if=/dev/urandom of=/tmp/cosmount-patch bs=1000 count=3 status=none";
    sh_ok(patch);
    for target in [q(local.path()), m.p("big.bin")] {
        sh_ok(&format!(
            "dd if=/tmp/cosmount-patch of={target} bs=1000 seek=6000 conv=notrunc status=none"
        ));
    }
    let want = sh_ok(&format!("md5sum < {}", q(local.path())));
    assert_eq!(sh_ok(&format!("md5sum < {}", m.p("big.bin"))), want);
    let stored = get(&b, "big.bin").expect("object");
    assert_eq!(stored, std::fs::read(local.path()).expect("read"));
}

#[test]
fn mv_rm_rmdir_and_attributes_survive_a_remount() {
    let b = bucket("namespace");
    let objects: Vec<(String, Vec<u8>)> = (0..1200).map(|i| (format!("old/f{i:04}"), vec![b'x'; i % 3])).collect();
    put_all(&b, objects);
    let m = Mount::new(&b, &[]);
    sh_ok(&format!("mv {} {}", m.p("old"), m.p("new")));
    assert_eq!(keys(&b, "new/").len(), 1200);
    assert!(keys(&b, "old/").is_empty());
    assert_eq!(sh_ok(&format!("ls {} | wc -l", m.p("new"))).trim(), "1200");
    let out = sh(&format!("rmdir {}", m.p("new")));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    sh_ok(&format!("rm -r {}", m.p("new")));
    assert!(keys(&b, "new/").is_empty());
    assert!(!Path::new(&m.p("new")).exists());
    // mkdir keeps empty directories; rmdir removes them.
    sh_ok(&format!("mkdir {0}/keep {0}/gone && rmdir {0}/gone", m.p("")));
    assert_eq!(keys(&b, ""), vec!["keep/".to_string()]);
    // chmod, chown, touch -d persist in metadata and show after a remount.
    std::fs::write(m.p("keep/f"), b"data").expect("write");
    sh_ok(&format!(
        "chmod 640 {0} && chown 1234:5678 {0} && touch -d '2021-02-03 04:05:06.5' {0}",
        m.p("keep/f")
    ));
    let before = sh_ok(&format!("stat -c '%a %u %g %y' {}", m.p("keep/f")));
    assert_eq!(before.trim(), "640 1234 5678 2021-02-03 04:05:06.500000000 +0000");
    drop(m);
    let m = Mount::new(&b, &[]);
    assert_eq!(sh_ok(&format!("stat -c '%a %u %g %y' {}", m.p("keep/f"))), before);
    assert_eq!(std::fs::read(m.p("keep/f")).expect("read"), b"data");
    let out = sh(&format!("ln {} {}", m.p("keep/f"), m.p("keep/hard")));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
}

#[test]
fn a_64_mib_file_goes_up_in_parts_and_reads_back_identical() {
    let b = bucket("large");
    let local = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(local.path(), pattern(64 * 1024 * 1024, 7)).expect("write");
    let m = Mount::new(&b, &[]);
    sh_ok(&format!("cp {} {}", q(local.path()), m.p("large.bin")));
    let (size, etag, _) = head(&b, "large.bin").expect("object");
    assert_eq!(size, 64 * 1024 * 1024);
    assert!(
        etag.trim_matches('"').ends_with("-8"),
        "a multipart upload of 8 parts of 8 MiB: {etag}"
    );
    sh_ok(&format!("cmp {} {}", q(local.path()), m.p("large.bin")));
}

#[test]
fn server_gone_during_a_write_fails_close_and_leaves_nothing_partial() {
    let b = bucket("outage");
    put_all(&b, vec![("precious".into(), b"good data".to_vec())]);
    let proxy = Proxy::start(&endpoint());
    let m = Mount::with_endpoint(&b, &proxy.endpoint, &["--part-size", "5"]);
    // A multipart write and an overwrite of good data, both failing while the server is away.
    let mut big = std::fs::File::create(m.p("big.bin")).expect("create");
    big.write_all(&pattern(11 * 1024 * 1024, 1)).expect("write");
    let mut over = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.p("precious"))
        .expect("open");
    over.write_all(b"replacement").expect("write");
    proxy.set_down(true);
    let err = big.sync_all().expect_err("fsync must fail while the server is away");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = over.sync_all().expect_err("fsync must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    drop(big);
    drop(over);
    proxy.set_down(false);
    // No partial object, the original intact, the aborted multipart upload cleaned up, and the
    // mount still working.
    nothing_partial_and_still_working(&b, &m);
    assert!(is_mounted(m.path()));
    let log = std::fs::read_to_string(&m.log).expect("log");
    assert!(log.contains("could not store the file"), "the failure is in the log");
}

/// A small tmpfs, unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("tmp");
        sh_ok(&format!(
            "mount -t tmpfs -o size={size} cosmount-test {}",
            q(dir.path())
        ));
        SmallFs(dir)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = sh(&format!("umount {}", q(self.0.path())));
    }
}

#[test]
fn a_full_staging_disk_fails_the_writer_with_enospc_and_stores_nothing() {
    // 12 MiB of staging room, 5 MiB parts: a 24 MiB copy (full parts are staged in the
    // background) and a 24 MiB overwrite of good data both run out of room. The writer hears
    // ENOSPC (from a write or at the latest from fsync/close), nothing partial is stored, and
    // the original stays.
    let b = bucket("staging-full");
    put_all(&b, vec![("precious".into(), b"good data".to_vec())]);
    let staging = SmallFs::new("12m");
    let m = Mount::new(&b, &["--part-size", "5", "--staging-dir", &q(staging.0.path())]);
    for name in ["big.bin", "precious"] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.p(name))
            .expect("open");
        let piece = pattern(1024 * 1024, 3);
        let mut first_err = None;
        for _ in 0..24 {
            if let Err(e) = f.write_all(&piece) {
                first_err = Some(e);
                break;
            }
        }
        let err = match first_err {
            Some(e) => e,
            None => f.sync_all().expect_err("fsync must fail when the staging disk is full"),
        };
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{name}: {err}");
        drop(f);
    }
    // No partial object, the original intact, the aborted multipart upload cleaned up, and the
    // mount still working.
    nothing_partial_and_still_working(&b, &m);
}

/// A file being written exists while its writer holds it open, though nothing of it is in S3
/// yet, also once the metadata TTL has passed: `ls` lists it, `ls -l` and `stat` show what was
/// written so far, and an `O_APPEND` write after them lands at the end (the kernel was not
/// told the file is shorter than it is). Closing stores it whole.
#[test]
fn a_file_open_for_writing_stays_visible_past_the_ttl() {
    let b = bucket("open-visible");
    put_all(&b, vec![("d/other".into(), b"x".to_vec())]);
    let m = Mount::new(&b, &["--metadata-ttl", "1"]);
    let p = m.p("d/log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .expect("open for append");
    f.write_all(&[b'a'; 1000]).expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(head(&b, "d/log").is_none(), "not uploaded while open");

    let names = sh_ok(&format!("ls {}", m.p("d")));
    assert_eq!(names.lines().collect::<Vec<_>>(), ["log", "other"], "{names}");
    let long = sh_ok(&format!("ls -l {}", m.p("d")));
    let line = long.lines().find(|l| l.ends_with(" log")).expect("log in ls -l");
    assert!(line.contains(" 1000 "), "ls -l shows the bytes written: {line}");
    assert_eq!(std::fs::metadata(&p).expect("stat").len(), 1000);

    f.write_all(&[b'b'; 1000]).expect("append");
    drop(f);
    let mut want = vec![b'a'; 1000];
    want.extend([b'b'; 1000]);
    assert_eq!(
        get(&b, "d/log").expect("stored"),
        want,
        "stored whole, appended at the end"
    );
    assert_eq!(std::fs::read(&p).expect("read"), want);
}

#[test]
fn a_directory_rename_deletes_its_sources_in_delete_objects_batches() {
    // Through the IBM double, which counts DELETEs and DeleteObjects requests by bucket, and
    // refuses retained keys of a protected bucket one by one inside a batch.
    let ep = cos_double();
    let c = client_at(&ep);
    for protected in [false, true] {
        let b = format!("batch{}{}", std::process::id(), u8::from(protected));
        rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
        if protected {
            protect(&ep, &b, 0, 0, 30); // default retention 0 days: deletable
        }
        let m = Mount::with_endpoint(&b, &ep, &[]);
        sh_ok(&format!(
            "mkdir -p '{0}/src/sub' && for i in $(seq 1 40); do echo $i > '{0}/src/f'$i; done && echo deep > '{0}/src/sub/d'",
            m.path().display()
        ));
        let before = double_stats(&ep);
        sh_ok(&format!("mv '{0}/src' '{0}/dst'", m.path().display()));
        let after = double_stats(&ep);
        let count = |s: &serde_json::Value, what: &str| s[what][&b].as_u64().unwrap_or(0);
        assert_eq!(
            count(&after, "batch_deletes") - count(&before, "batch_deletes"),
            1,
            "protected: {protected}"
        );
        assert_eq!(count(&after, "deletes"), count(&before, "deletes"), "no DELETE per key");
        let page = rt().block_on(c.list_objects_v2().bucket(&b).send()).expect("list");
        let mut listed: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        listed.sort();
        assert!(listed.iter().all(|k| k.starts_with("dst/")), "sources left: {listed:?}");
        assert_eq!(listed.len(), 43, "{listed:?}"); // 40 files, sub/d and the two markers moved
        assert_eq!(
            sh_ok(&format!(
                "cat '{}/dst/f7' '{}/dst/sub/d'",
                m.path().display(),
                m.path().display()
            )),
            "7\ndeep\n"
        );
    }
}
