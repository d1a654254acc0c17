//! A dead or hung server answers within seconds, a slow one is never cut off: a real mount over a
//! moto server stopped with SIGSTOP (its sockets still accept, nothing answers), behind a port
//! that closes (connections refused), and behind a proxy that passes 1 MB/s.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::process::Output;
use std::time::{Duration, Instant};

use common::proxy::{Gate, Throttle};
use common::*;

/// Run a shell command, timed.
fn timed(script: &str) -> (Duration, Output) {
    let start = Instant::now();
    let out = sh(script);
    (start.elapsed(), out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert `script` failed within `limit` with "Connection timed out" (ETIMEDOUT), and that the
/// daemon's log (`log`) shows a request that ran into the deadline meanwhile.
fn fails_timed_out(script: &str, limit: Duration, log: &std::path::Path) -> Duration {
    let deadline_hits = || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("nothing moved for 4 s (--timeout)")
            .count()
    };
    let before = deadline_hits();
    let (took, out) = timed(script);
    assert!(!out.status.success(), "`{script}` succeeded against a hung server");
    assert!(
        stderr(&out).contains("Connection timed out"),
        "`{script}`: {}",
        stderr(&out)
    );
    assert!(took <= limit, "`{script}` took {took:?} (limit {limit:?})");
    assert!(deadline_hits() > before, "`{script}`: no request ran into the deadline");
    eprintln!("hung server: `{script}` failed after {took:.1?}");
    took
}

#[test]
fn a_hung_server_fails_every_operation_within_the_deadline_and_loses_nothing() {
    let srv = OwnServer::start();
    let c = srv.client();
    let b = srv.bucket("hung");
    let big = pattern(24 << 20, 3);
    rt().block_on(c.put_object().bucket(&b).key("big.bin").body(big.clone().into()).send())
        .expect("put big");
    let ttl = Duration::from_secs(3);
    let m = Mount::with_endpoint(
        &b,
        &srv.endpoint,
        &["--timeout", "4", "--request-timeout", "2", "--metadata-ttl", "3"],
    );
    // Stored before the outage, each with fsync: these must all be there afterwards.
    sh_ok(&format!(
        "mkdir {0}/dir && echo kept > {0}/kept.txt && echo inside > {0}/dir/a.txt && sync {0}/kept.txt {0}/dir/a.txt",
        m.p("")
    ));
    let mut reader = std::fs::File::open(m.p("big.bin")).expect("open big");
    let mut first = [0u8; 4096];
    reader.read_exact(&mut first).expect("read the start");
    // Each operation starts with the mount online (it has just heard from the server), so it
    // waits for the whole deadline: 4 s of silence. A command may make more requests after its
    // first failure (the kernel looks a name up again; mv stats both names): the mount is then
    // offline and each is a 2 s probe. Names an operation needs are looked up first, so that
    // the operation itself, not a lookup, meets the silence.
    let limit = Duration::from_secs(14);
    let online = |names: &[&str]| {
        srv.resume();
        // Something the mount must ask the server for: it hears from it, and is online again.
        std::thread::sleep(ttl + Duration::from_millis(100));
        sh_ok(&format!("ls {} > /dev/null", m.p("")));
        for n in names {
            let _ = sh(&format!("stat {} > /dev/null 2>&1", m.p(n)));
        }
        srv.hang();
    };
    // lookup and readdir, once what the mount knows is older than the TTL
    online(&[]);
    std::thread::sleep(ttl + Duration::from_millis(200));
    fails_timed_out(&format!("stat {}", m.p("kept.txt")), limit, &m.log);
    online(&[]);
    std::thread::sleep(ttl + Duration::from_millis(200));
    fails_timed_out(&format!("ls {}", m.p("dir")), limit, &m.log);
    // open and read (a new reader: its first block)
    online(&["dir/a.txt"]);
    fails_timed_out(&format!("cat {}", m.p("dir/a.txt")), limit, &m.log);
    // read, on a file opened before
    online(&[]);
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let e = reader
        .read_exact_at(&mut buf, 20 << 20)
        .expect_err("read from a hung server");
    assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT), "{e}");
    assert!(start.elapsed() <= limit, "read took {:?}", start.elapsed());
    // write 1 MiB, fsync, close
    srv.resume();
    let mut f = std::fs::File::create(m.p("new.bin")).expect("create");
    srv.hang();
    let start = Instant::now();
    f.write_all(&pattern(1 << 20, 2)).expect("writes are buffered");
    let e = f.sync_all().expect_err("fsync against a hung server");
    assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT), "{e}");
    assert!(start.elapsed() <= limit, "fsync took {:?}", start.elapsed());
    drop(f);
    // rename
    online(&["kept.txt", "moved.txt"]);
    fails_timed_out(&format!("mv {} {}", m.p("kept.txt"), m.p("moved.txt")), limit, &m.log);
    // setxattr
    online(&["kept.txt"]);
    fails_timed_out(
        &format!("setfattr -n user.color -v red {}", m.p("kept.txt")),
        limit,
        &m.log,
    );
    // Once the mount knows the server is silent, each further operation is a short probe.
    std::thread::sleep(ttl);
    let (took, out) = timed(&format!("ls {}", m.p("")));
    assert!(!out.status.success());
    assert!(took <= Duration::from_secs(5), "a probe while offline took {took:?}");
    // The server comes back: the mount works at once, and nothing reported stored is missing.
    srv.resume();
    let (took, out) = timed(&format!("ls {}", m.p("")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took <= Duration::from_secs(3), "back after {took:?}");
    let body = |key: &str| {
        rt().block_on(async {
            let o = c.get_object().bucket(&b).key(key).send().await.ok()?;
            Some(o.body.collect().await.ok()?.into_bytes().to_vec())
        })
    };
    assert_eq!(body("kept.txt").as_deref(), Some(&b"kept\n"[..]));
    assert_eq!(body("dir/a.txt").as_deref(), Some(&b"inside\n"[..]));
    reader.read_exact_at(&mut buf, 20 << 20).expect("read after the outage");
    assert!(buf[..] == big[20 << 20..(20 << 20) + 4096], "exact bytes");
    sh_ok(&format!("echo after > {0}; sync {0}", m.p("after.txt")));
    assert_eq!(body("after.txt").as_deref(), Some(&b"after\n"[..]));
}

#[test]
fn with_the_defaults_a_write_to_a_hung_server_fails_within_30_seconds() {
    let srv = OwnServer::start();
    let b = srv.bucket("hung-default");
    let m = Mount::with_endpoint(&b, &srv.endpoint, &[]);
    sh_ok(&format!("echo before > {0}; sync {0}", m.p("before.txt")));
    let mut f = std::fs::File::create(m.p("one-mib.bin")).expect("create");
    srv.hang();
    let start = Instant::now();
    f.write_all(&pattern(1 << 20, 1)).expect("write (buffered)");
    let e = f.sync_all().expect_err("fsync against a hung server");
    let took = start.elapsed();
    eprintln!("write 1 MiB; fsync: {e} after {took:.1?}");
    assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT), "{e}");
    assert!(
        took >= Duration::from_secs(25) && took <= Duration::from_secs(36),
        "the default deadline is 30 s: {took:?}"
    );
    drop(f);
    // `ls` after the metadata TTL: the mount already knows the server is silent.
    std::thread::sleep(Duration::from_millis(1100));
    let (took, out) = timed(&format!("ls {}", m.p("")));
    assert!(!out.status.success() && stderr(&out).contains("Connection timed out"));
    assert!(took <= Duration::from_secs(5), "ls took {took:?}");
    srv.resume();
    let (took, out) = timed(&format!("ls {}", m.p("")));
    assert!(
        out.status.success() && took <= Duration::from_secs(3),
        "{took:?} {}",
        stderr(&out)
    );
}

#[test]
fn a_refused_port_fails_operations_within_the_deadline_and_the_mount_recovers_at_once() {
    let b = bucket("refused");
    put_all(&b, vec![("a.txt".into(), b"alpha".to_vec())]);
    let gate = Gate::start(&endpoint());
    let m = Mount::with_endpoint(&b, &gate.endpoint, &["--metadata-ttl", "0"]);
    assert_eq!(sh_ok(&format!("cat {}", m.p("a.txt"))), "alpha");
    gate.set_open(false);
    let (took, out) = timed(&format!("cat {}", m.p("a.txt")));
    eprintln!("refused port: cat failed after {took:.1?}: {}", stderr(&out).trim());
    assert!(!out.status.success());
    assert!(took <= Duration::from_secs(31), "open took {took:?}");
    let (took, out) = timed(&format!("echo x > {}", m.p("b.txt")));
    assert!(!out.status.success());
    assert!(took <= Duration::from_secs(5), "while offline, a probe: {took:?}");
    gate.set_open(true);
    let (took, out) = timed(&format!("cat {}", m.p("a.txt")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took <= Duration::from_secs(3), "back after {took:?}");
    sh_ok(&format!("echo x > {0}; sync {0}", m.p("b.txt")));
    assert_eq!(get(&b, "b.txt").expect("stored"), b"x\n");
}

/// The multipart ETag of `data` in `part`-byte parts: MD5 of the parts' MD5s, and their count.
fn multipart_etag(data: &[u8], part: usize) -> String {
    use md5::{Digest, Md5};
    let mut all = Vec::new();
    for p in data.chunks(part) {
        all.extend_from_slice(&Md5::digest(p));
    }
    let hex: String = Md5::digest(&all).iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}-{}\"", data.len().div_ceil(part))
}

#[test]
fn a_256_mib_upload_through_2_mb_per_s_completes_with_the_defaults() {
    // 8 MiB parts, 8 in flight over 2 MB/s: each part takes ~32 s, longer than the whole 30 s
    // deadline. Only progress keeps them alive.
    let b = bucket("slow256");
    let throttle = Throttle::start(&endpoint(), 2_000_000);
    let m = Mount::with_endpoint(&b, &throttle.endpoint, &["--log-filter", "info"]);
    let data = pattern(256 << 20, 7);
    let start = Instant::now();
    {
        let mut f = std::fs::File::create(m.p("big.bin")).expect("create");
        f.write_all(&data).expect("write 256 MiB");
        f.sync_all().expect("stored through a slow link");
    }
    let took = start.elapsed();
    eprintln!("256 MiB through 2 MB/s: stored in {took:.1?}");
    assert!(
        took >= Duration::from_secs(100),
        "the throttle was not in the way: {took:?}"
    );
    let (size, etag, _) = head(&b, "big.bin").expect("stored");
    assert_eq!(size, 256 << 20);
    assert_eq!(etag, multipart_etag(&data, 8 << 20), "exact bytes (multipart ETag)");
}

#[test]
fn a_slow_download_is_never_cut_off() {
    // 8 MiB read at 1 MB/s by a mount whose deadline is 3 s.
    let b = bucket("slowread");
    let data = pattern(8 << 20, 5);
    put_all(&b, vec![("slow.bin".into(), data.clone())]);
    let throttle = Throttle::start(&endpoint(), 1_000_000);
    let m = Mount::with_endpoint(&b, &throttle.endpoint, &["--timeout", "3", "--request-timeout", "2"]);
    let local = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(local.path(), &data).expect("write local");
    let start = Instant::now();
    sh_ok(&format!("cmp {} {}", local.path().display(), m.p("slow.bin")));
    let took = start.elapsed();
    eprintln!("8 MiB read through 1 MB/s in {took:.1?}");
    assert!(
        took >= Duration::from_secs(6),
        "the throttle was not in the way: {took:?}"
    );
}
