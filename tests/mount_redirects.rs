//! Writes the way shells write: `>`, `>>`, `exec 3>`, `tee`, pipelines, subshells and external
//! commands under bash and dash, each with its own sequence of open, dup2, close and write. The
//! final contents are stored exactly once (counted as versions of a versioned bucket, and as
//! write requests at the IBM double), and on protected buckets (IBM retention, Object Lock with
//! a default retention rule) no intermediate version is ever stored. A change that can only fail
//! after the last close leaves a trace: an ERROR line, a metric and an `fsync` error.

mod common;

use std::process::Command;

use common::proxy::{Fault, FaultProxy};
use common::*;

/// Each case: a name, the script writing `$F` (a path in the mount), and what the file holds.
const CASES: &[(&str, &str, &str)] = &[
    ("builtin", "echo evidence > \"$F\"", "evidence\n"),
    ("external", "printf 'a\\nb\\n' | cat > \"$F\"", "a\nb\n"),
    ("append-new", "echo one >> \"$F\"", "one\n"),
    ("group", "{ echo a; echo b; } > \"$F\"", "a\nb\n"),
    ("subshell", "( echo a; sh -c 'echo b' ) > \"$F\"", "a\nb\n"),
    (
        "exec-fd",
        "exec 3> \"$F\"; echo a >&3; printf b >&3; cat /dev/null >&3; exec 3>&-",
        "a\nb",
    ),
    ("tee", "echo hi | tee \"$F\" > /dev/null", "hi\n"),
    ("pipeline", "printf '3\\n1\\n2\\n' | sort > \"$F\"", "1\n2\n3\n"),
    ("empty", ": > \"$F\"", ""),
    ("touch", "touch \"$F\"", ""),
];

fn run_in(shell: &str, script: &str, file: &str) {
    let out = Command::new(shell)
        .arg("-c")
        .arg(script)
        .env("F", file)
        .output()
        .expect("shell");
    assert!(
        out.status.success(),
        "{shell} -c '{script}' failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn versioned_bucket(hint: &str) -> String {
    let b = bucket(hint);
    let c = client();
    rt().block_on(
        c.put_bucket_versioning()
            .bucket(&b)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send(),
    )
    .expect("versioning");
    b
}

#[test]
fn every_shell_redirect_stores_its_file_exactly_once() {
    let b = versioned_bucket("redirects");
    let m = Mount::new(&b, &[]);
    let c = client();
    for shell in ["bash", "dash"] {
        for (name, script, want) in CASES {
            let key = format!("{shell}-{name}.txt");
            run_in(shell, script, &m.p(&key));
            let versions = versions_at(&c, &b, &key);
            assert_eq!(
                versions.len(),
                1,
                "{shell}: `{script}` stored {} versions: {:?}",
                versions.len(),
                versions
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                versions[0],
                want.as_bytes(),
                "{shell}: `{script}` stored the wrong bytes"
            );
        }
    }
    // Appending to an existing file stores one new version per command, never an empty one.
    let key = "appended.txt";
    run_in(
        "bash",
        "echo one > \"$F\"; echo two >> \"$F\"; echo three >> \"$F\"",
        &m.p(key),
    );
    let versions = versions_at(&c, &b, key);
    assert_eq!(versions.len(), 3, "one version per command");
    assert_eq!(versions[0], b"one\ntwo\nthree\n");
    assert!(versions.iter().all(|v| !v.is_empty()), "no empty intermediate version");
    // Overwriting with `>` truncates at open: the empty file in between is never stored.
    run_in("bash", "echo replaced > \"$F\"", &m.p(key));
    let versions = versions_at(&c, &b, key);
    assert_eq!(versions.len(), 4);
    assert_eq!(versions[0], b"replaced\n");
    assert!(versions.iter().all(|v| !v.is_empty()), "no empty intermediate version");
    // tar writing an archive to standard output redirected into the mount.
    let src = tempfile::tempdir().expect("src");
    make_tree(src.path(), 12);
    run_in(
        "bash",
        &format!("tar cf - -C '{}' . > \"$F\"", src.path().display()),
        &m.p("backup.tar"),
    );
    assert_eq!(versions_at(&c, &b, "backup.tar").len(), 1);
    sh_ok(&format!("tar tf {} | grep -q d0/sub0/file0.txt", m.p("backup.tar")));
    assert_eq!(multipart_uploads(&b), 0);
}

/// Requests that stored (or tried to store) `bucket/key` at the double.
fn writes_at_double(ep: &str, bucket: &str, key: &str) -> u64 {
    double_stats(ep)["writes"][format!("{bucket}/{key}")]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn redirects_into_an_ibm_retention_bucket_store_the_contents_once_and_lock_them() {
    redirects_into_an_ibm_retention_bucket("redir", None);
}

#[test]
fn with_the_write_cache_redirects_into_an_ibm_retention_bucket_store_the_contents_once() {
    let wc = tempfile::tempdir().expect("write cache");
    redirects_into_an_ibm_retention_bucket("redirwc", Some(wc.path()));
}

/// Every redirect into a bucket with a retention policy sends one write, with the final
/// contents; with a write cache, `sync FILE` waits for that write before it is counted.
fn redirects_into_an_ibm_retention_bucket(hint: &str, write_cache: Option<&std::path::Path>) {
    let ep = cos_double();
    let c = client_at(&ep);
    let b = format!("{hint}{}", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).send()).expect("bucket");
    protect(&ep, &b, 0, 1, 30);
    let wc = write_cache.map(|d| d.to_string_lossy().into_owned());
    let extra: Vec<&str> = wc.iter().flat_map(|d| ["--write-cache", d.as_str()]).collect();
    let m = Mount::with_endpoint(&b, &ep, &extra);
    for shell in ["bash", "dash"] {
        for (name, script, want) in CASES {
            let key = format!("{shell}-{name}.txt");
            run_in(shell, script, &m.p(&key));
            if wc.is_some() {
                sh_ok(&format!("sync {}", m.p(&key)));
            }
            assert_eq!(
                writes_at_double(&ep, &b, &key),
                1,
                "{shell}: `{script}` sent more than one write to a retention bucket"
            );
            let body = rt()
                .block_on(async {
                    let o = c.get_object().bucket(&b).key(&key).send().await.ok()?;
                    Some(o.body.collect().await.ok()?.into_bytes().to_vec())
                })
                .expect("stored");
            assert_eq!(body, want.as_bytes(), "{shell}: `{script}`");
        }
    }
    // The evidence is locked: overwriting and deleting are refused.
    let f = m.p("bash-builtin.txt");
    let out = sh(&format!("echo tampered > {f}"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    let out = sh(&format!("rm {f}"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    assert_eq!(sh_ok(&format!("cat {f}")), "evidence\n");
    assert_eq!(
        writes_at_double(&ep, &b, "bash-builtin.txt"),
        1,
        "the refused overwrite sent nothing"
    );
}

#[test]
fn redirects_into_an_object_lock_bucket_with_default_retention_store_one_version() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    };
    let c = client();
    let b = format!("t{}-lockredir", std::process::id());
    rt().block_on(c.create_bucket().bucket(&b).object_lock_enabled_for_bucket(true).send())
        .expect("bucket");
    rt().block_on(
        c.put_object_lock_configuration()
            .bucket(&b)
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(
                        ObjectLockRule::builder()
                            .default_retention(
                                DefaultRetention::builder()
                                    .mode(ObjectLockRetentionMode::Governance)
                                    .days(1)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .send(),
    )
    .expect("default retention");
    let m = Mount::new(&b, &[]);
    for (name, script, want) in CASES {
        let key = format!("{name}.txt");
        run_in("bash", script, &m.p(&key));
        let versions = versions_at(&c, &b, &key);
        assert_eq!(
            versions.len(),
            1,
            "`{script}` stored {} locked versions",
            versions.len()
        );
        assert_eq!(versions[0], want.as_bytes(), "`{script}`");
    }
}

#[test]
fn a_change_that_fails_after_the_shell_closed_the_file_is_never_silent() {
    let b = bucket("unstored");
    let proxy = FaultProxy::start(&endpoint(), 0, 7);
    let m = Mount::with_endpoint(
        &b,
        &proxy.endpoint,
        &["--max-attempts", "1", "--metrics-addr", "127.0.0.1:0"],
    );
    sh_ok(&format!("echo stored > {}", m.p("ok.txt")));
    // The server refuses the next upload; the shell ignores the error of its close.
    proxy.fail_nth(&format!("PUT /{b}/lost.txt"), 1, Fault::Error500);
    let out = sh(&format!("echo lost > {}; echo shell-exit=$?", m.p("lost.txt")));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shell-exit=0"),
        "shells do not see it"
    );
    // 1. The log names the file at ERROR.
    let log = wait_log(&m.log, "NOT STORED");
    let line = log.lines().find(|l| l.contains("NOT STORED")).expect("an ERROR line");
    assert!(line.contains("ERROR") && line.contains("lost.txt"), "{line}");
    // 2. The metric counts it.
    let addr = wait_log(&m.log, "serving metrics on http://")
        .lines()
        .find_map(|l| l.split("serving metrics on http://").nth(1))
        .and_then(|r| r.split(['/', ' ', '"']).next())
        .expect("metrics address")
        .to_string();
    let metrics = sh_ok(&format!("curl -s http://{addr}/metrics"));
    assert!(
        metrics.contains("cosmount_files_not_stored_total 1"),
        "metric missing:\n{metrics}"
    );
    // 3. `sync FILE` (open + fsync) reports it, for anyone, until the file is written again.
    let out = sh(&format!("sync {}", m.p("lost.txt")));
    assert!(!out.status.success(), "sync must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Input/output error"));
    assert!(get(&b, "lost.txt").is_none(), "nothing was stored");
    sh_ok(&format!("sync {}", m.p("ok.txt")));
    sh_ok(&format!("echo again > {}; sync {0}", m.p("lost.txt")));
    assert_eq!(get(&b, "lost.txt").expect("stored now"), b"again\n");
}
