//! Shared harness for the real-mount tests: one local S3 server (moto) per test binary, a bucket
//! per test, and `Mount`, which runs the built `cosmount` binary on a temporary directory and
//! unmounts it (and reaps the daemon) when dropped.
#![allow(dead_code)]

pub mod http;
pub mod iam;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "cosmount-test";
pub const SECRET_KEY: &str = "cosmount-test-secret";

struct Server {
    endpoint: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

fn python() -> PathBuf {
    std::env::var_os("COSMOUNT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_server("moto_server.py"))
}

/// The IBM COS immutability double (moto plus IBM's legacy retention API), one per test binary.
pub fn cos_double() -> String {
    static DOUBLE: OnceLock<Server> = OnceLock::new();
    DOUBLE.get_or_init(|| start_server("cos_double.py")).endpoint.clone()
}

/// The IBM double's request counts (`GET /__double/stats`): by method, HEADs by key, writes by
/// "bucket/key", DELETEs and DeleteObjects requests by bucket.
pub fn double_stats(ep: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-s", &format!("{ep}/__double/stats")])
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).expect("the double's stats are JSON")
}

fn start_server(script: &str) -> Server {
    let (endpoint, child, stdin) = spawn_server(script);
    Server {
        endpoint,
        _child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
    }
}

/// Start `tests/support/<script>`: its endpoint, process and standard input (closing it stops
/// the server).
fn spawn_server(script: &str) -> (String, Child, ChildStdin) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script);
    let py = python();
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} (run scripts/setup.sh first): {e}", py.display()));
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read port");
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .expect("moto printed its port");
    let stdin = child.stdin.take().expect("stdin");
    (format!("http://127.0.0.1:{port}"), child, stdin)
}

/// A local S3 server (moto) of one test's own, which the test may freeze with SIGSTOP (a hung
/// server: its sockets still accept, nothing answers) and resume. Stopped when dropped.
pub struct OwnServer {
    pub endpoint: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        let (endpoint, child, stdin) = spawn_server("moto_server.py");
        OwnServer {
            endpoint,
            child,
            stdin: Some(stdin),
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Freeze the server (SIGSTOP).
    pub fn hang(&self) {
        self.signal("STOP");
    }

    /// Let it run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// A raw S3 client on this server.
    pub fn client(&self) -> Client {
        client_at(&self.endpoint)
    }

    /// A fresh bucket on this server.
    pub fn bucket(&self, name: &str) -> String {
        rt().block_on(self.client().create_bucket().bucket(name).send())
            .expect("create bucket");
        name.to_string()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bodies of every stored version of `key` (newest first, as listed), through ListObjectVersions.
pub fn versions_at(c: &Client, bucket: &str, key: &str) -> Vec<Vec<u8>> {
    rt().block_on(async {
        let listed = c
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .expect("list versions");
        let mut out = Vec::new();
        for v in listed.versions().iter().filter(|v| v.key() == Some(key)) {
            let o = c
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(v.version_id().map(str::to_string))
                .send()
                .await
                .expect("get version");
            out.push(o.body.collect().await.expect("body").into_bytes().to_vec());
        }
        out
    })
}

/// Endpoint URL of the local S3 server.
pub fn endpoint() -> String {
    server().endpoint.clone()
}

/// A runtime for the tests' own S3 calls.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt")
    })
}

/// A raw S3 client on the local server, to fill buckets and check their state.
pub fn client() -> Client {
    client_at(&endpoint())
}

/// A raw S3 client on `endpoint`.
pub fn client_at(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tests"))
        .build();
    Client::from_conf(conf)
}

/// A fresh bucket named after the test.
pub fn bucket(hint: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "t{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        clean.trim_matches('-')
    );
    let c = client();
    rt().block_on(c.create_bucket().bucket(&name).send())
        .expect("create bucket");
    name
}

/// Put objects (key, body) into `bucket`, 16 at a time.
pub fn put_all(bucket: &str, objects: Vec<(String, Vec<u8>)>) {
    let c = client();
    rt().block_on(async {
        use futures::stream::{self, StreamExt};
        let results: Vec<_> = stream::iter(objects)
            .map(|(k, v)| {
                let c = c.clone();
                async move {
                    c.put_object()
                        .bucket(bucket)
                        .key(&k)
                        .body(ByteStream::from(v))
                        .send()
                        .await
                        .map(|_| k)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r.expect("put object");
        }
    });
}

/// Keys in `bucket` under `prefix`, all pages.
pub fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let c = client();
    rt().block_on(async {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list");
            out.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out
    })
}

/// HEAD of `key`: (size, ETag, user metadata), or None.
pub fn head(bucket: &str, key: &str) -> Option<(i64, String, std::collections::HashMap<String, String>)> {
    let c = client();
    rt().block_on(c.head_object().bucket(bucket).key(key).send())
        .ok()
        .map(|o| {
            (
                o.content_length().unwrap_or(0),
                o.e_tag().unwrap_or_default().to_string(),
                o.metadata().cloned().unwrap_or_default(),
            )
        })
}

/// Body of `key`.
pub fn get(bucket: &str, key: &str) -> Option<Vec<u8>> {
    let c = client();
    rt().block_on(async {
        let o = c.get_object().bucket(bucket).key(key).send().await.ok()?;
        Some(o.body.collect().await.ok()?.into_bytes().to_vec())
    })
}

/// Multipart uploads in progress in `bucket`.
pub fn multipart_uploads(bucket: &str) -> usize {
    let c = client();
    rt().block_on(c.list_multipart_uploads().bucket(bucket).send())
        .expect("list uploads")
        .uploads()
        .len()
}

/// Write a tree of `n` files (sizes from 0 to ~100 KiB) in nested directories under `root`,
/// with a symlink and an empty directory.
pub fn make_tree(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("d{}/sub{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let size = match i % 10 {
            0 => 0,
            1 => 100_000,
            _ => (i * 37) % 5000,
        };
        std::fs::write(dir.join(format!("file{i}.txt")), pattern(size, i as u8)).expect("write");
    }
    std::fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
    std::os::unix::fs::symlink("d0/sub0/file0.txt", root.join("link")).expect("symlink");
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// Path of the built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cosmount")
}

/// A `cosmount` command with the test server's credentials in its environment.
pub fn cosmount_cmd() -> Command {
    let mut c = Command::new(bin());
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("COSMOUNT_LOG");
    c
}

/// Whether a filesystem is mounted exactly at `path`.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| s.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str())))
        .unwrap_or(false)
}

/// Run a shell command line, returning its output (asserting nothing).
pub fn sh(script: &str) -> Output {
    Command::new("bash").arg("-c").arg(script).output().expect("bash")
}

/// Run a shell command line that must succeed; returns stdout.
pub fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed: {}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live mount of a bucket by the built binary (in the foreground, as a child of the test).
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Mount {
    /// Mount `source` (`bucket` or `bucket:prefix`) with extra arguments.
    pub fn new(source: &str, extra: &[&str]) -> Mount {
        Self::with_endpoint(source, &endpoint(), extra)
    }

    /// Mount `source` through another endpoint (a proxy) with extra arguments.
    pub fn with_endpoint(source: &str, endpoint: &str, extra: &[&str]) -> Mount {
        Self::custom(source, endpoint, extra, |_| {})
    }

    /// Mount with the command adjusted by `adjust` (environment, arguments) before it starts.
    pub fn custom(source: &str, endpoint: &str, extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Mount {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
        let mut cmd = cosmount_cmd();
        adjust(&mut cmd);
        let child = cmd
            .arg(source)
            .arg(dir.path())
            .args(["--endpoint-url", endpoint, "--force-path-style", "--foreground"])
            .args(["--log-file", log.to_str().expect("utf8")])
            .args(if extra.contains(&"--log-filter") {
                &[][..]
            } else {
                &["--log-filter", "debug"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cosmount");
        let mut m = Mount {
            dir,
            child: Some(child),
            log,
        };
        m.wait_mounted();
        m
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if is_mounted(self.path()) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let out = self.child.take().map(|c| c.wait_with_output());
                    let err = out
                        .and_then(|o| o.ok())
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
                    panic!(
                        "cosmount exited with {status} before mounting: {}",
                        err.unwrap_or_default()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mount did not appear within 20 s");
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path` inside the mount, as a string for shell commands.
    pub fn p(&self, rel: &str) -> String {
        self.path().join(rel).to_string_lossy().into_owned()
    }

    /// Unmount with fusermount3 and return the daemon's exit status.
    pub fn unmount(&mut self) -> std::process::ExitStatus {
        let out = Command::new("fusermount3")
            .arg("-u")
            .arg(self.path())
            .output()
            .expect("fusermount3");
        assert!(
            out.status.success(),
            "fusermount3 -u failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_exit()
    }

    /// Wait (bounded) for the daemon to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon still tracked");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cosmount did not exit within 15 s of unmounting");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Lines of the daemon's log a failing test prints (CI keeps no files of a failed run).
const LOG_TAIL_LINES: usize = 300;

impl Drop for Mount {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: what the daemon did last, for a failure seen only on CI.
            // Without the SDK's own steps inside each request (a dozen lines per request).
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(r#"rpc.system="aws-api"}:"#))
                .collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- last {} of {} lines of the daemon's log {} (SDK steps left out) ---\n{}\n--- end of the daemon's log ---",
                tail.len(),
                lines.len(),
                self.log.display(),
                tail.join("\n")
            );
        }
        if is_mounted(self.path()) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(self.path())
                .output();
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait until `log` contains `needle`; returns the log.
pub fn wait_log(log: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Give `bucket` on the double an IBM retention policy (days).
pub fn protect(ep: &str, bucket: &str, min: u32, default: u32, max: u32) {
    let py = format!(
        "import base64,hashlib,requests\nx=b'<ProtectionConfiguration><Status>Retention</Status><MinimumRetention><Days>{min}</Days></MinimumRetention><DefaultRetention><Days>{default}</Days></DefaultRetention><MaximumRetention><Days>{max}</Days></MaximumRetention></ProtectionConfiguration>'\nr=requests.put('{ep}/{bucket}?protection',data=x,headers={{'Content-MD5':base64.b64encode(hashlib.md5(x).digest()).decode()}})\nassert r.status_code==200, r.text\n"
    );
    let py_bin = std::env::var("COSMOUNT_TEST_PYTHON")
        .unwrap_or_else(|_| format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let out = Command::new(py_bin).args(["-c", &py]).output().expect("python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
