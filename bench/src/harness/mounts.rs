//! Mount lifecycle and cleanup: mounting a system on a bucket and waiting for it, finding its
//! daemon, unmounting it (recording the daemon's peak RSS first), and the [`Janitor`] that undoes
//! everything — mounts, daemons, the server, the work directory — on any exit: the normal end, an
//! error, a panic, or Ctrl-C / SIGTERM (exit 130 / 143), as the bash harness's `trap cleanup EXIT`.
//!
//! The janitor's state is shared with a signal thread. On a signal, that thread ends the commands
//! the harness started (its child processes, by pid: the `timeout` wrappers pass the signal on)
//! and waits for them, then cleans up under the janitor's lock and exits. The main thread holds that lock for the
//! whole of a mount (command and wait), and a mount after the cleanup is refused, so no mount can
//! appear behind the cleanup's back.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::sleep;
use std::time::Duration;

use super::config::{cosmount_mode_option, is_cosmount};
use super::log;
use super::parse::{head_bytes, is_mounted_in, ppid_of_stat, vmhwm_mib};
use super::Ctx;

/// Whether `path` is a mount point now.
pub fn is_mounted(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    is_mounted_in(&info, &path.to_string_lossy())
}

/// Whether process `pid`'s arguments include `arg` exactly.
fn cmdline_has(pid: u32, arg: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        .unwrap_or(false)
}

/// The live process called `name` with `mnt` as one of its arguments.
pub fn daemon_pid(name: &str, mnt: &Path) -> Option<u32> {
    let mnt = mnt.to_string_lossy();
    for d in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = d.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(d.path().join("comm")).unwrap_or_default();
        if comm.trim_end_matches('\n') == name && cmdline_has(pid, &mnt) {
            return Some(pid);
        }
    }
    None
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn kill(pid: u32) {
    quiet(Command::new("kill").arg(pid.to_string()));
}

/// `fusermount3 -u`, else `umount`, else `umount -l` (lazily, `lazy_log` says why).
fn unmount(mnt: &Path, lazy_log: Option<&str>) {
    if quiet(Command::new("fusermount3").arg("-u").arg(mnt)) || quiet(Command::new("umount").arg(mnt)) {
        return;
    }
    if let Some(sys) = lazy_log {
        log(&format!("{sys}: {} busy, lazy unmount", mnt.display()));
    }
    let _ = Command::new("umount").arg("-l").arg(mnt).status();
}

#[derive(Default)]
struct JanitorState {
    mountpoints: Vec<PathBuf>,
    daemons: HashMap<PathBuf, u32>,
    server: Option<Child>,
    work: Option<PathBuf>,
    repo: PathBuf,
    keep: bool,
    done: bool,
}

#[derive(Default)]
struct JanitorInner {
    state: Mutex<JanitorState>,
    /// A signal arrived: the run is being torn down.
    stopping: AtomicBool,
    /// bench-server's pid (0: none), readable without the lock a mount may hold.
    server_pid: AtomicU32,
}

/// What must be undone when the harness exits (see the module doc).
#[derive(Clone, Default)]
pub struct Janitor(Arc<JanitorInner>);

/// The live child processes of this one (the commands it is running, and bench-server).
fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|d| {
            let pid = d.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = fs::read_to_string(d.path().join("stat")).ok()?;
            // A zombie (state Z) has exited already.
            (ppid_of_stat(&stat) == Some(me) && !stat.contains(") Z ")).then_some(pid)
        })
        .collect()
}

/// Sends SIGTERM to the running commands (the `timeout` wrappers pass it on) and waits up to 20 s
/// for them to end, so that the mounts they use are idle when the cleanup unmounts them (a lazy
/// unmount under a writer, then a SIGTERM to its daemon, can leave the writer and the daemon hung).
fn end_children(server: Option<u32>) {
    let running = || {
        children()
            .into_iter()
            .filter(|p| Some(*p) != server)
            .collect::<Vec<_>>()
    };
    for pid in running() {
        kill(pid);
    }
    for _ in 0..200 {
        if running().is_empty() {
            return;
        }
        sleep(Duration::from_millis(100));
    }
}

impl Janitor {
    fn state(&self) -> MutexGuard<'_, JanitorState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a signal is tearing the run down.
    pub fn stopping(&self) -> bool {
        self.0.stopping.load(Ordering::SeqCst)
    }

    /// The work directory to delete at the end (kept with `keep`), under `repo`/bench/work.
    pub fn set_work(&self, repo: &Path, work: &Path, keep: bool) {
        let mut s = self.state();
        s.repo = repo.to_path_buf();
        s.work = Some(work.to_path_buf());
        s.keep = keep;
    }

    pub fn set_server(&self, child: Child) {
        self.0.server_pid.store(child.id(), Ordering::SeqCst);
        self.state().server = Some(child);
    }

    fn server_pid(&self) -> Option<u32> {
        Some(self.0.server_pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }

    pub fn server_running(&self) -> bool {
        self.state()
            .server
            .as_mut()
            .map(|c| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false)
    }

    fn set_daemon(&self, mnt: &Path, pid: Option<u32>) {
        let mut s = self.state();
        match pid {
            Some(p) => s.daemons.insert(mnt.to_path_buf(), p),
            None => s.daemons.remove(mnt),
        };
    }

    fn daemon(&self, mnt: &Path) -> Option<u32> {
        self.state().daemons.get(mnt).copied()
    }

    /// Undoes everything (once); `rc` is the exit code about to be returned: when it is not 0, the
    /// last lines of every log are printed first.
    pub fn cleanup(&self, rc: i32) {
        let mut s = self.state();
        if s.done {
            return;
        }
        s.done = true;
        for m in s.mountpoints.clone() {
            if is_mounted(&m) {
                unmount(&m, None);
            }
            if let Some(pid) = s.daemons.get(&m).copied() {
                // An unmounted daemon exits by itself; a SIGTERM while it does so makes cosmount
                // try to unmount again (EINVAL) and hang, so it gets 5 s first.
                let alive = || Path::new(&format!("/proc/{pid}")).is_dir() && cmdline_has(pid, &m.to_string_lossy());
                for _ in 0..50 {
                    if !alive() {
                        break;
                    }
                    sleep(Duration::from_millis(100));
                }
                if alive() {
                    kill(pid);
                }
            }
        }
        if let Some(mut child) = s.server.take() {
            kill(child.id());
            let _ = child.wait();
        }
        let Some(work) = s.work.clone() else {
            return;
        };
        let logs = work.join("logs");
        if rc != 0 && logs.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(&logs)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                let Ok(text) = fs::read(&f) else { continue };
                if text.is_empty() {
                    continue;
                }
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                log(&format!("---- last lines of {name}"));
                let text = String::from_utf8_lossy(&text);
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(15)..] {
                    eprintln!("{}", l.chars().take(300).collect::<String>());
                }
            }
        }
        if s.keep {
            log(&format!("kept {} (BENCH_KEEP=1)", work.display()));
        } else {
            let _ = fs::remove_dir_all(&work);
            let _ = fs::remove_dir(s.repo.join("bench/work"));
        }
    }

    /// Runs the cleanup and exits 130 on SIGINT, 143 on SIGTERM (a thread of its own).
    pub fn handle_signals(&self) {
        let janitor = self.clone();
        std::thread::spawn(move || {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            let rc = rt.block_on(async {
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    return None;
                };
                tokio::select! {
                    _ = int.recv() => Some(130),
                    _ = term.recv() => Some(143),
                }
            });
            if let Some(rc) = rc {
                janitor.0.stopping.store(true, Ordering::SeqCst);
                let server = janitor.server_pid();
                end_children(server);
                janitor.cleanup(rc);
                std::process::exit(rc);
            }
        });
    }
}

impl Ctx {
    /// Mounts `sys` on `bucket` at `mnt` and waits for it (30 s); on failure, why.
    /// The mount command's output goes to a file, not a pipe: a daemon that keeps its inherited
    /// stdout (rclone --daemon does) would otherwise hold the pipe open for as long as it runs.
    pub fn mount_fs(&mut self, sys: &str, bucket: &str, mnt: &Path) -> Result<(), String> {
        let out = self.logs.join(format!("mount-{sys}.out"));
        let _ = fs::create_dir_all(mnt);
        // Held until the mount is registered with its daemon: the cleanup waits for it.
        let janitor = self.janitor.clone();
        let mut held = janitor.state();
        if held.done || janitor.stopping() {
            return Err("interrupted".to_string());
        }
        if !held.mountpoints.iter().any(|m| m == mnt) {
            held.mountpoints.push(mnt.to_path_buf());
        }
        let mut cmd = self.command("timeout");
        cmd.args(["-k", "5", "60"]);
        match sys {
            "cosmount" | "cosmount-la" | "cosmount-wc" => {
                cmd.arg(&self.cosmount).arg(bucket).arg(mnt);
                cmd.args([
                    "--endpoint-url",
                    &self.endpoint,
                    "--force-path-style",
                    "--region",
                    "us-east-1",
                ]);
                cmd.args(&self.cosmount_args);
                // A state directory of its own (multipart journal, metadata cache on disk),
                // emptied for every mount unless the workload keeps it for the next one.
                let state = self.work.join(format!("state-{sys}"));
                if !self.keep_state {
                    let _ = fs::remove_dir_all(&state);
                }
                cmd.arg("--state-dir").arg(&state);
                match cosmount_mode_option(sys) {
                    // The write-back journal: a directory of its own, emptied like the state
                    // directory (the daemon that used it has uploaded what it held and exited).
                    Some(opt @ "--write-cache") => {
                        let wc = self.work.join(format!("wc-{sys}"));
                        if !self.keep_state {
                            let _ = fs::remove_dir_all(&wc);
                        }
                        let _ = fs::create_dir_all(&wc);
                        cmd.arg(opt).arg(&wc);
                    }
                    Some(opt) => {
                        cmd.arg(opt);
                    }
                    None => {}
                }
                cmd.arg("--log-file").arg(self.logs.join(format!("{sys}.log")));
            }
            "s3fs" => {
                cmd.arg("s3fs").arg(bucket).arg(mnt);
                cmd.args([
                    "-o",
                    &format!("url={}", self.endpoint),
                    "-o",
                    "use_path_request_style",
                    "-o",
                ]);
                cmd.arg(format!("passwd_file={}", self.work.join("s3fs.passwd").display()));
            }
            "rclone" => {
                cmd.args(["rclone", "mount", &format!("bench:{bucket}")]).arg(mnt);
                cmd.arg("--config").arg(self.work.join("rclone.conf"));
                cmd.args(["--vfs-cache-mode", "writes", "--cache-dir"])
                    .arg(self.work.join("rclone-cache"));
                cmd.args(["--daemon", "--log-file"]).arg(self.logs.join("rclone.log"));
            }
            other => return Err(format!("unknown system {other}")),
        }
        let head = || head_bytes(&fs::read(&out).unwrap_or_default(), 300);
        let file = fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let status = cmd.stdin(Stdio::null()).stdout(file).stderr(err).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("{sys} exited {}: {}", exit_code(s), head())),
            Err(e) => return Err(format!("{sys}: {e}")),
        }
        for _ in 0..300 {
            if is_mounted(mnt) {
                let name = if is_cosmount(sys) { "cosmount" } else { sys };
                match daemon_pid(name, mnt) {
                    Some(p) => held.daemons.insert(mnt.to_path_buf(), p),
                    None => held.daemons.remove(mnt),
                };
                return Ok(());
            }
            sleep(Duration::from_millis(100));
        }
        Err(format!("{sys}: {} not mounted after 30 s: {}", mnt.display(), head()))
    }

    /// Records the daemon's peak RSS for `group`, unmounts, and waits for the daemon to exit: 60 s,
    /// or, for cosmount-wc (which uploads what its journal still holds before it exits), as long as
    /// a measured command may take.
    pub fn unmount_fs(&mut self, sys: &str, mnt: &Path, group: &str) {
        let pid = self.janitor.daemon(mnt);
        if let Some(p) = pid {
            if let Some(mib) = fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .as_deref()
                .and_then(vmhwm_mib)
            {
                self.res.note_rss(sys, group, mib);
            }
        }
        if is_mounted(mnt) {
            unmount(mnt, Some(sys));
        }
        if let Some(p) = pid {
            let proc_dir = PathBuf::from(format!("/proc/{p}"));
            let wait_s = if cosmount_mode_option(sys) == Some("--write-cache") {
                self.cfg.cmd_timeout.max(60)
            } else {
                60
            };
            for _ in 0..wait_s * 10 {
                if !proc_dir.is_dir() {
                    break;
                }
                sleep(Duration::from_millis(100));
            }
            if proc_dir.is_dir() {
                log(&format!(
                    "{sys} daemon {p} still running {wait_s} s after unmount; killing it"
                ));
                kill(p);
            }
        }
        self.janitor.set_daemon(mnt, None);
    }
}

/// A process's exit code as the shell reports it (128 + signal when killed).
pub fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}
