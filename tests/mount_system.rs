//! cosmount as part of the system: mounting through mount(8) and an fstab (type fuse.cosmount),
//! the Prometheus endpoint during a copy, the log line of a failed request, and syslog in the
//! background. Real binary, real FUSE, real mount(8) and mount.fuse3, local S3 server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// GET `path` from `addr`; (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The sum of every sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The address a mount started with `--metrics-addr 127.0.0.1:0` serves metrics on (from its log).
/// FUSE requests of kind `op` served so far. A request is counted once its reply is sent, so a
/// command may return a moment before its last request is counted: read until the count holds
/// still.
fn fuse_requests(addr: &str, op: &str) -> f64 {
    let read = || {
        let (_, text) = http_get(addr, "/metrics");
        sample(&text, &format!("cosmount_fuse_requests_total{{op=\"{op}\"}}"))
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn metrics_addr(m: &Mount) -> String {
    let log = wait_log(&m.log, "serving metrics on http://");
    log.split("serving metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("address in the log")
        .to_string()
}

/// `mount -a -T FSTAB` with a `fuse.cosmount` line, then `umount`. mount(8) drops PATH from the
/// environment of its helpers, so mount.fuse3's `/bin/sh -c "cosmount ..."` searches the shell's
/// default PATH: the test runs in a private mount namespace where the directory holding the built
/// binary is bind-mounted over /usr/local/bin, without changing the machine.
#[test]
fn fstab_mount_and_umount() {
    let b = bucket("fstab");
    put_all(&b, vec![("docs/readme.txt".into(), b"fstab works\n".to_vec())]);
    let work = tempfile::tempdir().expect("tempdir");
    let bindir = work.path().join("bin");
    let mnt = work.path().join("mnt");
    std::fs::create_dir_all(&bindir).expect("mkdir");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    std::fs::copy(bin(), bindir.join("cosmount")).expect("copy the binary");
    let log = work.path().join("logs/sub/cosmount.log");
    let fstab = work.path().join("fstab");
    let opts = format!(
        "_netdev,nofail,ro,uid=4321,gid=4322,allow_other,endpoint_url={},force_path_style,log_file={},x-systemd.automount",
        endpoint(),
        log.display()
    );
    std::fs::write(&fstab, format!("{b}:docs {} fuse.cosmount {opts} 0 0\n", mnt.display())).expect("fstab");
    let bad = work.path().join("fstab.bad");
    std::fs::write(
        &bad,
        format!("{b} {} fuse.cosmount ro,no_such_option=1 0 0\n", mnt.display()),
    )
    .expect("fstab");
    let script = format!(
        r#"
set -u
mount --bind {bindir} /usr/local/bin || exit 90
mount -a -T {bad} 2>bad.err; echo "bad_rc=$?"
mount -a -T {fstab} || exit 91
echo "type=$(findmnt -n -o FSTYPE {mnt}) source=$(findmnt -n -o SOURCE {mnt})"
echo "owner=$(stat -c %u:%g {mnt}/readme.txt)"
echo "content=$(cat {mnt}/readme.txt)"
if touch {mnt}/new 2>/dev/null; then echo "write=allowed"; else echo "write=refused"; fi
mount -a -T {fstab}; echo "again_rc=$?"
umount {mnt}; echo "umount_rc=$?"
for i in $(seq 100); do pgrep -f "[c]osmount {b}:docs" >/dev/null || break; sleep 0.1; done
pgrep -f "[c]osmount {b}:docs" >/dev/null && echo "daemon=alive" || echo "daemon=gone"
findmnt {mnt} >/dev/null && {{ umount -l {mnt}; echo "still=mounted"; }}
exit 0
"#,
        bindir = bindir.display(),
        bad = bad.display(),
        fstab = fstab.display(),
        mnt = mnt.display(),
    );
    // mount(8) keeps the rest of the environment: the credentials reach the daemon.
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash", "-c", &script])
        .current_dir(work.path())
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad_err = std::fs::read_to_string(work.path().join("bad.err")).unwrap_or_default();
    assert!(out.status.success(), "script failed: {stdout}\n{stderr}");
    let has = |line: &str| stdout.lines().any(|l| l.trim() == line);
    assert!(!has("bad_rc=0"), "an unknown option must fail the mount: {stdout}");
    assert!(
        bad_err.contains("unknown mount option \"no_such_option=1\""),
        "the error names the option: {bad_err}"
    );
    assert!(has(&format!("type=fuse source={b}:docs")), "{stdout}");
    assert!(has("owner=4321:4322"), "uid=/gid= apply: {stdout}");
    assert!(has("content=fstab works"), "{stdout}");
    assert!(has("write=refused"), "ro applies: {stdout}");
    assert!(has("again_rc=0"), "mount -a again skips the mounted entry: {stdout}");
    assert!(has("umount_rc=0"), "{stdout}");
    assert!(has("daemon=gone"), "the daemon exits after umount: {stdout}");
    assert!(!has("still=mounted"), "{stdout}");
    // log_file= went through, and its missing directories were created.
    let text = std::fs::read_to_string(&log).expect("the log file exists");
    assert!(text.contains("mounted"), "{text}");
}

#[test]
fn unknown_option_is_a_usage_error() {
    let out = cosmount_cmd()
        .args(["some-bucket", "/nonexistent", "-o", "ro,frobnicate"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown mount option \"frobnicate\""), "{err}");
}

#[test]
fn metrics_answer_and_move_during_a_copy() {
    let b = bucket("metrics");
    let mut m = Mount::new(
        &b,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--part-size",
            "5",
            "--log-filter",
            "info",
        ],
    );
    let addr = metrics_addr(&m);
    let (status, before) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(before.contains("# TYPE cosmount_uploads_in_flight gauge"), "{before}");
    assert!(before.contains("cosmount_memory_budget_bytes"), "{before}");
    let (status, _) = http_get(&addr, "/nothing");
    assert!(status.contains("404"), "{status}");

    let src = tempfile::NamedTempFile::new().expect("tmp");
    let size = 32 * 1024 * 1024;
    std::fs::write(src.path(), pattern(size, 9)).expect("write source");
    let writes = |t: &str| sample(t, "cosmount_fuse_requests_total{op=\"write\"}");
    let sent = |t: &str| sample(t, "cosmount_s3_sent_bytes_total");
    let (writes0, sent0) = (writes(&before), sent(&before));
    let mut cp = Command::new("cp")
        .arg(src.path())
        .arg(m.p("big.bin"))
        .stdout(Stdio::null())
        .spawn()
        .expect("cp");
    let mut moved_during = None;
    loop {
        let running = cp.try_wait().expect("wait").is_none();
        if !running {
            break;
        }
        let (_, text) = http_get(&addr, "/metrics");
        if cp.try_wait().expect("wait").is_none() && moved_during.is_none() && writes(&text) > writes0 {
            moved_during = Some(writes(&text));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cp.wait().expect("cp").success());
    assert!(moved_during.is_some(), "the write counter moved while cp was running");
    let (_, after) = http_get(&addr, "/metrics");
    assert!(writes(&after) > writes0, "{after}");
    assert!(
        sample(&after, "cosmount_s3_requests_total{operation=\"UploadPart\"}") >= 6.0,
        "a 32 MiB file in 5 MiB parts: {after}"
    );
    assert!(
        sample(
            &after,
            "cosmount_s3_requests_total{operation=\"CompleteMultipartUpload\"}"
        ) >= 1.0
    );
    assert!(sent(&after) - sent0 >= size as f64, "bytes sent counted: {after}");
    assert!(sample(&after, "cosmount_fuse_request_duration_seconds_count{op=\"write\"}") > 0.0);
    assert_eq!(sample(&after, "cosmount_uploads_in_flight"), 0.0, "{after}");
    // A 32 MiB upload is "large": its progress is logged at info.
    let log = wait_log(&m.log, "uploaded a large file");
    assert!(log.contains("uploading a large file"), "{log}");
    assert_eq!(m.unmount().code(), Some(0));
}

#[test]
fn failed_requests_log_op_key_errno_and_cause() {
    let b = bucket("faillog");
    put_all(&b, vec![("dir/file.txt".into(), b"x".to_vec())]);
    let proxy = proxy::Proxy::start(&endpoint());
    let mut m = Mount::with_endpoint(
        &b,
        &proxy.endpoint,
        &["--max-attempts", "1", "--request-timeout", "3", "--metadata-ttl", "0"],
    );
    // An ordinary answer: ENOENT, logged at DEBUG.
    assert!(std::fs::metadata(m.path().join("dir/missing.txt")).is_err());
    let text = wait_log(&m.log, "key=\"dir/missing.txt\"");
    let line = text
        .lines()
        .find(|l| l.contains("request failed") && l.contains("key=\"dir/missing.txt\""))
        .expect("one line for the failed lookup");
    for want in ["DEBUG", "op=\"lookup\"", "errno=2", "error=\"ENOENT\"", "cause="] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    // A real failure: S3 unreachable, logged at WARN with the cause.
    proxy.set_down(true);
    assert!(std::fs::read(m.path().join("dir/file.txt")).is_err());
    let text = wait_log(&m.log, "error=\"EIO\"");
    let line = text
        .lines()
        .find(|l| l.contains("request failed") && l.contains("error=\"EIO\""))
        .expect("one line for the failed request");
    for want in ["WARN", "op=\"", "key=\"dir", "errno=5", "cause=\""] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    proxy.set_down(false);
    assert_eq!(m.unmount().code(), Some(0));
}

/// In the background without --log-file, the daemon logs to syslog once detached.
#[test]
fn background_daemon_logs_to_syslog() {
    let b = bucket("syslog");
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("dev-log");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the fake /dev/log");
    // Read from the start, as a syslog daemon does (a datagram socket queues only a few lines).
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    let mnt = tempfile::tempdir().expect("mnt");
    let out = cosmount_cmd()
        .arg(&b)
        .arg(mnt.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style"])
        .args(["--log-filter", "warn,cosmount=debug"])
        .env("COSMOUNT_SYSLOG_SOCKET", &sock_path)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(is_mounted(mnt.path()));
    let _ = std::fs::metadata(mnt.path().join("nope.txt"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while found.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(msg) = rx.recv_timeout(left) else { break };
        if msg.contains("request failed") && msg.contains("key=\"nope.txt\"") {
            found = Some(msg);
        }
    }
    sh_ok(&format!("fusermount3 -u {}", mnt.path().display()));
    let msg = found.expect("the failed lookup reached syslog");
    // facility daemon (3), severity debug (7): <31>
    assert!(msg.starts_with("<31>cosmount["), "{msg}");
    assert!(msg.contains("errno=2"), "{msg}");
}

/// Round trips the kernel's caches can spare without changing an answer: a repeated `ls -f`
/// within the metadata TTL is served from the kernel's cache of the directory (no readdir reaches
/// the daemon), and `ls -l` asks for no file's security label or ACL but the first (the mount
/// answers ENOTSUP, so `ls` knows the file system has none). Changes still
/// show: one made through the mount at once, one made by another client once the TTL has passed.
#[test]
fn repeated_listings_are_served_by_the_kernel_and_changes_still_show() {
    let b = bucket("kernel-cache");
    let n = 40;
    put_all(&b, (0..n).map(|i| (format!("d/f{i:02}"), b"x".to_vec())).collect());
    let ttl = 10;
    let m = Mount::new(
        &b,
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            "--metadata-ttl",
            &ttl.to_string(),
            "--log-filter",
            "info",
        ],
    );
    let addr = metrics_addr(&m);
    let count = |op: &str| fuse_requests(&addr, op);
    let ls_f = || {
        let out = sh_ok(&format!("ls -f {}", m.p("d")));
        let mut names: Vec<String> = out.lines().filter(|l| !l.starts_with('.')).map(String::from).collect();
        names.sort();
        names
    };
    let mut want: Vec<String> = (0..n).map(|i| format!("f{i:02}")).collect();

    let listed_at = Instant::now();
    let r0 = count("readdir");
    assert_eq!(ls_f(), want);
    let r1 = count("readdir");
    assert!(r1 > r0, "the first ls -f reads the directory from the daemon");
    assert_eq!(ls_f(), want, "the second ls -f gives the same names");
    assert_eq!(
        count("readdir"),
        r1,
        "the second ls -f was served by the kernel's cache"
    );
    assert!(listed_at.elapsed() < Duration::from_secs(ttl), "both within the TTL");

    let x0 = count("getxattr");
    let first = sh_ok(&format!("ls -l {}", m.p("d")));
    let x1 = count("getxattr");
    let second = sh_ok(&format!("ls -l {}", m.p("d")));
    let x2 = count("getxattr");
    assert_eq!(first.lines().count(), n + 1, "{first}");
    assert_eq!(second.lines().count(), n + 1, "{second}");
    // Once per `ls`: the directory's own label and ACL, and then the first file's.
    assert!(
        x1 - x0 <= 4.0,
        "ls -l of {n} files stops asking for labels and ACLs after ENOTSUP: {}",
        x1 - x0
    );
    assert!(x2 - x1 <= 4.0, "so does the second ls -l: {}", x2 - x1);

    // A change through the mount shows at once.
    sh_ok(&format!("touch {}", m.p("d/new")));
    want.push("new".into());
    want.sort();
    assert_eq!(ls_f(), want, "a file created through the mount is listed at once");
    sh_ok(&format!("rm {}", m.p("d/f00")));
    want.retain(|w| w != "f00");
    assert_eq!(ls_f(), want, "a file removed through the mount is gone at once");

    // Another client's changes show once the TTL has passed.
    assert_eq!(ls_f(), want);
    put_all(&b, vec![("d/other".into(), b"y".to_vec())]);
    rt().block_on(client().delete_object().bucket(&b).key("d/f01").send())
        .expect("delete");
    std::thread::sleep(Duration::from_secs(ttl) + Duration::from_millis(500));
    want.push("other".into());
    want.retain(|w| w != "f01");
    want.sort();
    assert_eq!(ls_f(), want, "another client's changes show after the TTL");
}

/// A file opened write-only (`cp`, `dd of=`) is written around the page cache (FOPEN_DIRECT_IO):
/// its writes reach the daemon without the kernel's page-cache path (which asks for
/// `security.capability` before every write, so the count of those tells the paths apart),
/// and what was written is what is stored and read back, also over pages a reader had cached
/// before the overwrite. A handle opened read-write keeps the page cache.
#[test]
fn write_only_handles_bypass_the_page_cache_and_readers_see_their_bytes() {
    let b = bucket("direct-write");
    let m = Mount::new(&b, &["--metrics-addr", "127.0.0.1:0"]);
    let addr = metrics_addr(&m);
    let count = |op: &str| fuse_requests(&addr, op);
    let f = m.p("f.bin");
    let x0 = count("getxattr");
    sh_ok(&format!(
        "head -c 4194304 /dev/zero | tr '\\0' a | dd of={f} bs=1M iflag=fullblock status=none"
    ));
    let x1 = count("getxattr");
    assert!(
        x1 - x0 <= 1.0,
        "write-only writes take the direct path: {} getxattr",
        x1 - x0
    );
    assert_eq!(
        std::fs::read(&f).expect("read"),
        vec![b'a'; 4 << 20],
        "read back through the mount"
    );
    let stored = get(&b, "f.bin").expect("stored");
    assert_eq!(stored, vec![b'a'; 4 << 20], "stored as written");

    // A reader caches the file, then a write-only handle overwrites the middle in place.
    let before = std::fs::read(&f).expect("read");
    assert_eq!(before[1 << 20], b'a');
    sh_ok(&format!(
        "head -c 1048576 /dev/zero | tr '\\0' b | dd of={f} bs=1M seek=1 conv=notrunc iflag=fullblock status=none"
    ));
    let mut want = vec![b'a'; 4 << 20];
    want[1 << 20..2 << 20].fill(b'b');
    assert_eq!(std::fs::read(&f).expect("read"), want, "no stale cached page is read");
    assert_eq!(get(&b, "f.bin").expect("stored"), want);

    // Read-write handles keep the page cache (and its per-write capability check).
    let x2 = count("getxattr");
    let mut h = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .expect("open rw");
    for _ in 0..4 {
        h.write_all(&[b'c'; 1 << 20]).expect("write");
    }
    drop(h);
    let x3 = count("getxattr");
    assert!(
        x3 - x2 >= 4.0,
        "read-write writes go through the page cache: {}",
        x3 - x2
    );
    assert_eq!(std::fs::read(&f).expect("read"), vec![b'c'; 4 << 20]);
}

/// `ls -l` once the metadata TTL has passed: the entries come again with their attributes
/// (READDIRPLUS) instead of one lookup per name, and show exactly what the first `ls -l` showed.
/// Objects another client changed or removed meanwhile show as they are now (a changed object's
/// attributes are not handed out from before), through `ls -l` and `stat` alike. The inodes the
/// kernel got that way are counted as looked up: once it forgets them, everything still works.
#[test]
fn ls_l_after_the_ttl_gets_attributes_with_the_entries() {
    let b = bucket("readdirplus");
    let n = 60;
    put_all(&b, (0..n).map(|i| (format!("d/f{i:02}"), vec![b'x'; i + 1])).collect());
    let m = Mount::new(&b, &["--metrics-addr", "127.0.0.1:0", "--metadata-ttl", "1"]);
    let addr = metrics_addr(&m);
    let count = |op: &str| fuse_requests(&addr, op);
    let ls_l = || sh_ok(&format!("ls -l --time-style=+%s {}", m.p("d")));
    let past_ttl = || std::thread::sleep(Duration::from_millis(1300));

    let l0 = count("lookup");
    let first = ls_l();
    let l1 = count("lookup");
    assert_eq!(first.lines().count(), n + 1, "{first}");
    assert!(l1 - l0 >= n as f64, "a cold ls -l looks every name up: {}", l1 - l0);
    for i in 0..n {
        assert!(
            first.contains(&format!(" {} ", i + 1)) && first.contains(&format!("f{i:02}")),
            "f{i:02} of {} bytes in {first}",
            i + 1
        );
    }

    past_ttl();
    let (l2, p2) = (count("lookup"), count("readdirplus"));
    let second = ls_l();
    let (l3, p3) = (count("lookup"), count("readdirplus"));
    assert_eq!(second, first, "the same listing, attributes and all");
    assert!(p3 > p2, "the entries came with their attributes");
    assert!(
        l3 - l2 <= 2.0,
        "no lookup per name after the TTL: {} lookups for {n} names",
        l3 - l2
    );

    // Another client rewrites one object and removes another.
    put_all(&b, vec![("d/f05".into(), vec![b'y'; 1000])]);
    rt().block_on(client().delete_object().bucket(&b).key("d/f06").send())
        .expect("delete");
    past_ttl();
    let third = ls_l();
    assert_eq!(third.lines().count(), n, "{third}");
    let f05 = third.lines().find(|l| l.ends_with(" f05")).expect("f05 listed");
    assert!(f05.contains(" 1000 "), "f05 shows its new size: {f05}");
    assert!(!third.contains(" f06"), "f06 is gone: {third}");
    assert_eq!(std::fs::metadata(m.p("d/f05")).expect("stat").len(), 1000);
    assert_eq!(std::fs::read(m.p("d/f05")).expect("read"), vec![b'y'; 1000]);

    // The kernel forgets the inodes it got with the entries; they are found again.
    sh_ok("sync; echo 2 > /proc/sys/vm/drop_caches");
    past_ttl();
    let fourth = ls_l();
    assert_eq!(fourth, third, "after the kernel forgot its inodes");
    assert_eq!(std::fs::read(m.p("d/f07")).expect("read"), vec![b'x'; 8]);
}
