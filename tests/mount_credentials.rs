//! Real-mount tests of credentials: IBM API keys traded for IAM bearer tokens that expire and are
//! refreshed under load, IAM refusing a key, the COS credentials file, and secrets kept out of logs.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::iam::{AuthProxy, IamDouble, BAD_KEY, BAD_KEY_MESSAGE};
use common::*;

const GOOD_KEY: &str = "good-api-key-4b1d2e9a";

fn ibm_env(cmd: &mut Command, key: &str, iam: &str) {
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("IBM_API_KEY_ID", key)
        .env("IBM_AUTH_ENDPOINT", iam)
        .env("IBM_SERVICE_INSTANCE_ID", "crn:v1:test:instance");
}

#[test]
fn reads_and_writes_keep_working_while_tokens_expire_every_few_seconds() {
    let b = bucket("iam");
    let iam = IamDouble::start(Duration::from_secs(4));
    let proxy = AuthProxy::start(&endpoint(), &iam);
    let m = Mount::custom(&b, &proxy.endpoint, &["--log-filter", "trace"], |c| {
        ibm_env(c, GOOD_KEY, &iam.endpoint)
    });
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(20) {
        let body = pattern(1000 + i * 37, i as u8);
        std::fs::write(m.p(&format!("f{i}")), &body).expect("write through the mount");
        assert_eq!(
            std::fs::read(m.p(&format!("f{i}"))).expect("read through the mount"),
            body
        );
        assert_eq!(get(&b, &format!("f{i}")).expect("object"), body);
        let listed = std::fs::read_dir(m.path()).expect("ls").count();
        assert_eq!(listed, i + 1);
        i += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    let calls = iam.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        calls >= 5,
        "tokens of 4 s over 20 s need several refreshes, IAM saw {calls}"
    );
    assert!(proxy.accepted.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let rejected = proxy.rejected.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(rejected, 0, "no request went out with an expired token");
    let log_path = m.log.clone();
    drop(m);
    // Trace-level logs carry no key and no token.
    let log = std::fs::read_to_string(log_path).expect("read log");
    assert!(log.lines().count() > 100, "trace logging was on");
    assert!(!log.contains(GOOD_KEY), "the API key leaked into the log");
    for token in iam.tokens.lock().expect("tokens").keys() {
        assert!(!log.contains(token.as_str()), "a bearer token leaked into the log");
    }
}

#[test]
fn a_rejected_api_key_fails_the_mount_with_iams_message() {
    let b = bucket("iam-bad");
    let iam = IamDouble::start(Duration::from_secs(60));
    let mnt = tempfile::tempdir().expect("tmp");
    let mut cmd = cosmount_cmd();
    ibm_env(&mut cmd, BAD_KEY, &iam.endpoint);
    let out = cmd
        .arg(&b)
        .arg(mnt.path())
        .args([
            "--endpoint-url",
            &endpoint(),
            "--force-path-style",
            "--foreground",
            "--log-filter",
            "trace",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(BAD_KEY_MESSAGE) && err.contains("rejected the API key"),
        "{err}"
    );
    assert!(!err.contains(BAD_KEY), "the key itself must not be shown: {err}");
    assert!(!is_mounted(mnt.path()));
}

#[test]
fn an_unreachable_iam_endpoint_is_named() {
    let mnt = tempfile::tempdir().expect("tmp");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut cmd = cosmount_cmd();
    ibm_env(&mut cmd, GOOD_KEY, &format!("http://127.0.0.1:{closed}"));
    let out = cmd
        .arg("some-bucket")
        .arg(mnt.path())
        .args(["--endpoint-url", &endpoint(), "--force-path-style", "--foreground"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach the IAM token endpoint") && err.contains(&closed.to_string()),
        "{err}"
    );
}

#[test]
fn the_cos_credentials_file_is_found_in_home_and_an_open_one_warns() {
    let b = bucket("cosfile");
    put_all(&b, vec![("x".into(), b"from cos creds".to_vec())]);
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join(".bluemix/cos_credentials");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    let json = format!(
        r#"{{"apikey":"unused","cos_hmac_keys":{{"access_key_id":"{ACCESS_KEY}","secret_access_key":"{SECRET_KEY}"}}}}"#
    );
    std::fs::write(&file, json).expect("write");
    let home_path = home.path().to_path_buf();
    let m = Mount::custom(&b, &endpoint(), &["--log-filter", "info"], |c| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", &home_path);
    });
    assert_eq!(std::fs::read(m.p("x")).expect("read"), b"from cos creds");
    let log = std::fs::read_to_string(&m.log).expect("log");
    assert!(
        log.contains("COS credentials file") && log.contains("HMAC keys"),
        "the source is logged"
    );
    assert!(
        log.contains("readable by group or others"),
        "a world-readable credential file warns"
    );
    assert!(!log.contains(SECRET_KEY), "the secret is not logged");
}

#[test]
fn a_token_refused_before_its_expiry_is_refreshed_once_and_the_request_retried() {
    let b = bucket("iam-revoked");
    let iam = IamDouble::start_with(Duration::from_secs(3600), Duration::from_secs(2));
    let proxy = AuthProxy::start(&endpoint(), &iam);
    let m = Mount::custom(&b, &proxy.endpoint, &[], |c| ibm_env(c, GOOD_KEY, &iam.endpoint));
    std::fs::write(m.p("before"), b"1").expect("write");
    std::thread::sleep(Duration::from_millis(2500));
    // The held token is now refused: the request is retried with a fresh one and succeeds.
    std::fs::write(m.p("after"), b"2").expect("write after revocation");
    assert_eq!(get(&b, "after").expect("object"), b"2");
    assert!(
        proxy.rejected.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the old token was refused"
    );
    assert!(
        iam.calls.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "a new token was fetched"
    );
}

#[test]
fn an_account_mount_with_an_api_key_names_its_service_instance() {
    // With the instance (IBM wants it to list and create buckets): buckets listed and made.
    let b = bucket("iam-acct");
    let iam = IamDouble::start(Duration::from_secs(600));
    let proxy = AuthProxy::start(&endpoint(), &iam);
    let m = Mount::custom("--all-buckets", &proxy.endpoint, &[], |c| {
        ibm_env(c, GOOD_KEY, &iam.endpoint)
    });
    let names = std::fs::read_dir(m.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    assert!(names.contains(&b), "{names:?}");
    let made = format!("iam-made-{}", std::process::id());
    std::fs::create_dir(m.p(&made)).expect("mkdir creates a bucket with a bearer token");
    std::fs::write(m.p(&format!("{made}/f")), b"through IAM").expect("write");
    assert_eq!(get(&made, "f").expect("stored"), b"through IAM");
    assert_eq!(proxy.rejected.load(std::sync::atomic::Ordering::SeqCst), 0);
    drop(m);
    // Without it, the mount says what is missing before asking IAM for anything.
    let mnt = tempfile::tempdir().expect("tmp");
    let mut cmd = cosmount_cmd();
    ibm_env(&mut cmd, GOOD_KEY, &iam.endpoint);
    cmd.env_remove("IBM_SERVICE_INSTANCE_ID");
    let calls = iam.calls.load(std::sync::atomic::Ordering::SeqCst);
    let out = cmd
        .args(["--all-buckets"])
        .arg(mnt.path())
        .args(["--endpoint-url", &proxy.endpoint, "--force-path-style", "--foreground"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--service-instance-id"), "{err}");
    assert_eq!(
        iam.calls.load(std::sync::atomic::Ordering::SeqCst),
        calls,
        "IAM was not asked"
    );
}
