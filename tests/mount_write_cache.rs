//! The write cache on a real mount (`--write-cache`): `kill -9` during a `cp -r` loses no file
//! that `cp` finished, a hung server does not hold up closes and the files read back meanwhile,
//! and a full cache disk falls back to storing at close.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Entries now in the write cache under `dir`.
fn entries(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("files-"))
        .map(|d| {
            std::fs::read_dir(d.path())
                .map(|r| {
                    r.filter_map(Result::ok)
                        .filter(|e| e.path().extension().is_some_and(|x| x == "wc"))
                        .count()
                })
                .unwrap_or(0)
        })
        .sum()
}

fn body(i: usize) -> Vec<u8> {
    format!("file {i} ").repeat(40 + i % 300).into_bytes()
}

/// Wait until `check` holds (bounded).
fn wait_for(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_daemon_killed_during_cp_r_loses_no_file_cp_finished_and_the_next_mount_uploads_them() {
    let b = bucket("wc-crash");
    let src = tempfile::tempdir().expect("src");
    for i in 0..2000 {
        let dir = src.path().join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i:04}")), body(i)).expect("write");
    }
    let wc = tempfile::tempdir().expect("write cache");
    let state = tempfile::tempdir().expect("state");
    let args = [
        "--write-cache",
        wc.path().to_str().expect("utf8"),
        "--state-dir",
        state.path().to_str().expect("utf8"),
        "--log-filter",
        "info",
    ];
    // The server goes away once the directories exist: every file cp closes waits in the
    // cache (its uploads fail and are retried), and none of cp's steps needs the server (the
    // directories were made moments ago: their names are known, and new names in them absent).
    let gate = common::proxy::Gate::start(&endpoint());
    let mut m = Mount::with_endpoint(&b, &gate.endpoint, &[&args[..], &["--metadata-ttl", "60"]].concat());
    for d in 0..20 {
        std::fs::create_dir_all(m.p(&format!("tree/d{d:02}"))).expect("mkdir");
    }
    gate.set_open(false);
    let dst = m.p("tree");
    let cp = Command::new("cp")
        .arg("-rv")
        .arg(format!("{}/.", src.path().display()))
        .arg(&dst)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cp");
    // Kill the daemon while cp runs and files wait in the cache.
    wait_for("files in the write cache", 60, || entries(wc.path()) >= 300);
    let pid = m.child.as_ref().expect("daemon").id();
    sh_ok(&format!("kill -9 {pid}"));
    let _ = m.wait_exit();
    let out = cp.wait_with_output().expect("cp output");
    let left = entries(wc.path());
    // What cp finished: the files it named before its first error, but the last one (cp names a
    // file before it copies it).
    let verbose = String::from_utf8_lossy(&out.stdout);
    let mut done: Vec<usize> = verbose
        .lines()
        .filter_map(|l| {
            let name = l.rsplit('/').next()?.trim_end_matches('\'');
            name.strip_prefix('f')?.parse().ok()
        })
        .collect();
    // Files cp named and then failed on (the daemon gone) are not among them.
    let errors = String::from_utf8_lossy(&out.stderr);
    let failed: std::collections::HashSet<usize> = errors
        .lines()
        .filter_map(|l| {
            let quoted = l.split('\'').nth(1)?;
            quoted.rsplit('/').next()?.strip_prefix('f')?.parse().ok()
        })
        .collect();
    done.retain(|i| !failed.contains(i));
    assert!(done.len() >= 300, "cp finished {} files before the kill", done.len());
    sh_ok(&format!("fusermount3 -u -z {}", m.p("")));
    gate.set_open(true);

    // The same endpoint (the cache is kept per endpoint and bucket).
    let mut again = Mount::with_endpoint(&b, &gate.endpoint, &args);
    wait_log(
        &again.log,
        "files an earlier mount closed and did not upload are uploaded now",
    );
    wait_for("the leftovers uploaded", 120, || entries(wc.path()) == 0);
    let stored: Vec<String> = keys(&b, "tree/").into_iter().filter(|k| !k.ends_with('/')).collect();
    for i in &done {
        let key = format!("tree/d{:02}/f{i:04}", i % 20);
        assert_eq!(get(&b, &key).as_deref(), Some(&body(*i)[..]), "{key} was lost");
    }
    for key in &stored {
        let i: usize = key.rsplit_once("/f").and_then(|(_, n)| n.parse().ok()).expect("name");
        assert_eq!(get(&b, key).expect("object"), body(i), "{key} is not what cp wrote");
    }
    eprintln!(
        "cp finished {} files before the kill, {left} were in the cache, {} are stored",
        done.len(),
        stored.len()
    );
    assert!(
        stored.len() >= done.len() && left > 0,
        "{} stored, {} finished by cp, {left} left in the cache at the kill",
        stored.len(),
        done.len()
    );
    assert!(again.unmount().success());
}

#[test]
fn a_hung_server_does_not_hold_up_closes_and_pending_files_read_back_until_sync_stores_them() {
    let server = OwnServer::start();
    let b = server.bucket("wc-hang");
    let wc = tempfile::tempdir().expect("write cache");
    let mut m = Mount::with_endpoint(
        &b,
        &server.endpoint,
        &[
            "--write-cache",
            wc.path().to_str().expect("utf8"),
            "--timeout",
            "3",
            "--metadata-ttl",
            "60",
        ],
    );
    std::fs::create_dir(m.p("d")).expect("mkdir");
    server.hang();
    // Shell redirects of each kind, a pipeline through tee, and cp: every close returns.
    let start = Instant::now();
    sh_ok(&format!(
        "cd {} && for i in 1 2 3 4 5; do echo line $i > f$i; done && echo more >> f1 && \
         exec 3> f6 && echo via-exec >&3 && exec 3>&- && printf 'a\\nb\\n' | tee f7 > /dev/null && \
         cp f7 f8",
        m.p("d")
    ));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closes waited for the hung server: {:?}",
        start.elapsed()
    );
    assert_eq!(entries(wc.path()), 8);
    // Read back while the server is frozen: stat, cat, cmp.
    assert_eq!(std::fs::read(m.p("d/f1")).expect("read"), b"line 1\nmore\n");
    assert_eq!(std::fs::read(m.p("d/f6")).expect("read"), b"via-exec\n");
    assert_eq!(std::fs::metadata(m.p("d/f8")).expect("stat").len(), 4);
    sh_ok(&format!("cmp {} {}", m.p("d/f7"), m.p("d/f8")));
    // `sync FILE` waits for S3, and says it failed.
    let sync = sh(&format!("sync {}", m.p("d/f2")));
    assert!(!sync.status.success(), "sync of a file the server never took must fail");
    server.resume();
    // `sync DIR` stores everything under it.
    sh_ok(&format!("sync {}", m.p("")));
    let c = server.client();
    let got = |k: &str| {
        rt().block_on(c.get_object().bucket(&b).key(k).send())
            .ok()
            .map(|o| rt().block_on(o.body.collect()).expect("body").to_vec())
    };
    assert_eq!(got("d/f1").as_deref(), Some(&b"line 1\nmore\n"[..]));
    assert_eq!(got("d/f5").as_deref(), Some(&b"line 5\n"[..]));
    assert_eq!(got("d/f6").as_deref(), Some(&b"via-exec\n"[..]));
    assert_eq!(got("d/f8").as_deref(), Some(&b"a\nb\n"[..]));
    assert_eq!(entries(wc.path()), 0);
    assert!(m.unmount().success());
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        sh_ok(&format!("mount -t tmpfs -o size={size} tmpfs {}", dir.path().display()));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = sh(&format!("umount -l {}", self.0.path().display()));
    }
}

#[test]
fn a_full_write_cache_disk_falls_back_to_storing_at_close_and_loses_nothing() {
    let b = bucket("wc-full");
    let disk = Tmpfs::new("256k");
    // A slow link (300 kB/s): files wait in the cache until it is full.
    let slow = common::proxy::Throttle::start(&endpoint(), 300_000);
    let mut m = Mount::with_endpoint(
        &b,
        &slow.endpoint,
        &[
            "--write-cache",
            disk.0.path().to_str().expect("utf8"),
            "--log-filter",
            "info",
        ],
    );
    let data: Vec<Vec<u8>> = (0..8).map(|i| pattern(100 * 1024, i)).collect();
    for (i, d) in data.iter().enumerate() {
        std::fs::write(m.p(&format!("f{i}")), d).expect("every close succeeds");
    }
    let log = wait_log(&m.log, "uploading it now instead");
    assert!(log.contains("No space left on device"), "the cause is named");
    sh_ok(&format!("sync {}", m.p("")));
    for (i, d) in data.iter().enumerate() {
        assert_eq!(get(&b, &format!("f{i}")).as_deref(), Some(&d[..]), "f{i}");
    }
    assert!(m.unmount().success());
}

#[test]
fn unmount_waits_for_the_write_cache_and_after_a_deadline_the_next_mount_uploads_the_rest() {
    let server = OwnServer::start();
    let b = server.bucket("wc-drain");
    let c = server.client();
    let got = |k: &str| {
        rt().block_on(c.get_object().bucket(&b).key(k).send())
            .ok()
            .map(|o| rt().block_on(o.body.collect()).expect("body").to_vec())
    };
    let wc = tempfile::tempdir().expect("write cache");
    let wcs = wc.path().to_str().expect("utf8");
    // Uploads one at a time over a slow link: they are far behind when the unmount comes.
    let slow = common::proxy::Throttle::start(&server.endpoint, 200_000);
    let mut m = Mount::with_endpoint(
        &b,
        &slow.endpoint,
        &[
            "--write-cache",
            wcs,
            "--write-cache-uploads",
            "1",
            "--log-filter",
            "info",
        ],
    );
    let data: Vec<Vec<u8>> = (0..30).map(|i| pattern(20 * 1024, i)).collect();
    // In a directory made just now: creating a file there asks the server nothing.
    std::fs::create_dir(m.p("d")).expect("mkdir");
    for (i, d) in data.iter().enumerate() {
        std::fs::write(m.p(&format!("d/f{i}")), d).expect("write");
    }
    assert!(entries(wc.path()) > 10, "uploads lag behind: {}", entries(wc.path()));
    assert!(m.unmount().success());
    let log = std::fs::read_to_string(&m.log).expect("log");
    assert!(log.contains("before exiting"), "progress is logged");
    for (i, d) in data.iter().enumerate() {
        assert_eq!(got(&format!("d/f{i}")).as_deref(), Some(&d[..]), "f{i}");
    }
    assert_eq!(entries(wc.path()), 0);

    // A server that hangs, and a deadline: the daemon exits, the files stay in the cache.
    let mut m = Mount::with_endpoint(
        &b,
        &server.endpoint,
        &[
            "--write-cache",
            wcs,
            "--unmount-deadline",
            "2",
            "--timeout",
            "3",
            "--log-filter",
            "info",
        ],
    );
    std::fs::create_dir(m.p("late")).expect("mkdir");
    server.hang();
    for i in 0..3 {
        std::fs::write(m.p(&format!("late/{i}")), format!("late {i}")).expect("write");
    }
    let start = Instant::now();
    assert!(m.unmount().success());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(entries(wc.path()), 3, "left for the next mount");
    let log = std::fs::read_to_string(&m.log).expect("log");
    assert!(
        log.contains("the unmount deadline passed with 3 files not uploaded"),
        "{log}"
    );
    server.resume();
    let mut again = Mount::with_endpoint(&b, &server.endpoint, &["--write-cache", wcs]);
    wait_for("the files left uploaded", 30, || entries(wc.path()) == 0);
    for i in 0..3 {
        assert_eq!(got(&format!("late/{i}")), Some(format!("late {i}").into_bytes()));
    }
    assert!(again.unmount().success());
}

#[test]
fn a_file_the_server_refuses_for_good_is_kept_in_recovery_and_named_in_the_log() {
    let b = bucket("wc-gone");
    let wc = tempfile::tempdir().expect("write cache");
    let gate = common::proxy::Gate::start(&endpoint());
    let m = Mount::with_endpoint(
        &b,
        &gate.endpoint,
        &[
            "--write-cache",
            wc.path().to_str().expect("utf8"),
            "--log-filter",
            "info",
        ],
    );
    std::fs::create_dir(m.p("d")).expect("mkdir");
    // The server goes away: the file waits in the cache.
    gate.set_open(false);
    std::fs::write(m.p("d/report.txt"), b"quarterly figures").expect("close returns");
    // Meanwhile the bucket is emptied and deleted by someone else.
    let c = client();
    rt().block_on(c.delete_object().bucket(&b).key("d/").send())
        .expect("delete marker");
    rt().block_on(c.delete_bucket().bucket(&b).send())
        .expect("delete bucket");
    gate.set_open(true);
    let log = wait_log(&m.log, "the server refused d/report.txt for good");
    assert!(log.contains("NOT STORED"), "the unstored report names it");
    let kept = std::fs::read_dir(wc.path())
        .expect("cache")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("files-"))
        .expect("bucket dir")
        .path()
        .join("recovery/d/report.txt");
    assert_eq!(std::fs::read(&kept).expect("recovered"), b"quarterly figures");
    assert_eq!(entries(wc.path()), 0, "out of the queue");
}
