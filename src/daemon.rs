//! Running in the background the way `mount` users expect: `cosmount BUCKET DIR` returns (exit 0)
//! only once the mount is live, and a failure to mount exits non-zero with the reason on stderr.
//!
//! How: the foreground process re-runs itself with `--foreground` in a new process group, with
//! `COSMOUNT_READY_PIPE=1` and its stdout on a pipe, and waits. The child writes one ready line
//! on that pipe after the kernel has accepted the mount, then points stdin/stdout/stderr at
//! `/dev/null` (so `$(cosmount ...)` and test harnesses holding pipes are not kept waiting) and goes
//! on serving. If the child exits first, its messages have already reached our stderr and its exit
//! code becomes ours.
//!
//! Also here, the other calls into libc the daemon needs: [`tune_allocator`] and [`prefault`].
#![allow(unsafe_code)] // dup2(2), mallopt(3), madvise(2) and setrlimit(2) below, the only unsafe code in the crate

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

const READY_ENV: &str = "COSMOUNT_READY_PIPE";
const READY_LINE: &str = "cosmount: mount is ready";

/// The uid this process runs as.
pub fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// The gid this process runs as.
pub fn current_gid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| m.gid()).unwrap_or(0)
}

/// Start the daemon in the background and wait until it is mounted or has failed.
pub fn spawn_background() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cosmount: cannot find my own executable to start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    args.push("--foreground".into());
    let spawned = Command::new(exe)
        .args(args)
        .env(READY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cosmount: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        // Blocks until the ready line or until the child exits (EOF). The child bounds its own
        // checks (--connect-timeout), so this does not wait forever.
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() == READY_LINE {
        return ExitCode::SUCCESS;
    }
    match child.wait() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("cosmount: lost track of the daemon: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether this process is the daemon started by [`spawn_background`] (it will detach).
pub fn is_background_daemon() -> bool {
    std::env::var_os(READY_ENV).is_some()
}

/// In the daemon: tell systemd (`Type=notify`) and a waiting parent that the mount is live, then
/// detach from the parent's stdio (the log moves to syslog, see [`crate::logging`]).
pub fn notify_ready() {
    crate::systemd::ready();
    if !is_background_daemon() {
        return;
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{READY_LINE}");
    let _ = stdout.flush();
    let Ok(devnull) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") else {
        return;
    };
    let null = devnull.as_raw_fd();
    for fd in [0, 1, 2] {
        // SAFETY: `null` is an open descriptor owned by `devnull`, alive for this call; dup2
        // atomically replaces the standard descriptor, which no Rust object owns exclusively.
        unsafe {
            libc::dup2(null, fd);
        }
    }
    crate::logging::detach();
}

/// Make the allocator give large buffers back to the system when they are freed.
///
/// glibc raises its mmap threshold each time a large mmapped block is freed, after which 8 MiB
/// read-ahead and part buffers come from the heap and freed ones stay in the process: RSS then
/// drifts far above what the memory budget counts. A fixed threshold keeps every buffer of
/// 256 KiB or more in its own mapping, returned on free, so RSS follows the budget.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the daemon starts its
    // threads, and M_MMAP_THRESHOLD with a value in range is always valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Raise the soft limit on open files to the hard one (each file waiting in the write cache
/// keeps its staging file open); returns the soft limit now in force.
pub fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a properly initialised rlimit that outlives
    // the calls; RLIMIT_NOFILE is always a valid resource.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Map the pages of a large, empty buffer in one call (`MADV_POPULATE_WRITE`) rather than one
/// page fault per 4 KiB as it is filled. A GET body is copied into a fresh buffer of its
/// Content-Length (up to 8 MiB, its own mapping: see [`tune_allocator`]); taking its pages in
/// one call cut the daemon's CPU time for a 4-file parallel read by about 5%.
pub fn prefault(buf: &mut Vec<u8>) {
    const PAGE: usize = 4096;
    if buf.capacity() < (1 << 20) {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + buf.capacity()) / PAGE * PAGE;
    if end > first {
        #[cfg(target_os = "linux")]
        // SAFETY: [first, end) lies within the allocation `buf` owns. MADV_POPULATE_WRITE only
        // faults its pages in (writable, zero-filled as a fresh mapping's are) and changes no
        // contents; a kernel without it (before 5.14) fails the call, which is ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_POPULATE_WRITE);
        }
    }
}
