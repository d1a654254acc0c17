//! Logging: tracing with an EnvFilter taken from `--log-filter`, `--debug` or `COSMOUNT_LOG`
//! (in that order; default `warn,aws_config=error,cosmount=info`), written to stderr, appended to
//! `--log-file` (its directory is created if missing), or — for a daemon running in the background
//! without `--log-file` — sent to syslog once the daemon has detached from the terminal.
//!
//! Syslog: each event is one datagram `<PRI>cosmount[PID]: LINE` (facility daemon, severity from
//! the level) on `/dev/log`, which journald serves too (`journalctl -t cosmount`). Until the mount
//! is ready the daemon's stderr is still the starting terminal, so start-up messages go there;
//! [`detach`] switches to syslog. Without a `/dev/log` the background log is discarded, as before.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The syslog socket.
const DEV_LOG: &str = "/dev/log";
/// Syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// Where the log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    File,
    /// Standard error until [`detach`], then syslog.
    StderrThenSyslog,
}

static DETACHED: AtomicBool = AtomicBool::new(false);

/// The daemon has left the terminal: from now on the background log goes to syslog.
pub fn detach() {
    DETACHED.store(true, Ordering::Release);
}

/// Install the global subscriber. `background` is true in a daemon that will detach from the
/// terminal (see [`crate::daemon`]); without a log file its log then moves to syslog.
pub fn init(filter: Option<&str>, debug: bool, file: Option<&Path>, background: bool) -> Result<Destination, String> {
    let spec = match (filter, debug) {
        (Some(f), _) => f.to_string(),
        (None, true) => "debug".to_string(),
        (None, false) => {
            std::env::var("COSMOUNT_LOG").unwrap_or_else(|_| "warn,aws_config=error,cosmount=info".to_string())
        }
    };
    let env_filter = EnvFilter::try_new(&spec).map_err(|e| format!("invalid log filter {spec:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_target(false);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(f))
                .try_init()
                .map_err(|e| e.to_string())?;
            Ok(Destination::File)
        }
        None if background => {
            let socket = std::env::var_os("COSMOUNT_SYSLOG_SOCKET").unwrap_or_else(|| DEV_LOG.into());
            // Non-blocking: when syslog falls behind, lines are dropped rather than blocking
            // the file operation that logs them.
            let syslog = UnixDatagram::unbound()
                .and_then(|s| s.connect(&socket).and_then(|()| s.set_nonblocking(true)).map(|()| s))
                .ok();
            builder
                .with_ansi(false)
                .with_writer(DaemonWriter {
                    syslog,
                    pid: std::process::id(),
                })
                .try_init()
                .map_err(|e| e.to_string())?;
            Ok(Destination::StderrThenSyslog)
        }
        None => {
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .try_init()
                .map_err(|e| e.to_string())?;
            Ok(Destination::Stderr)
        }
    }
}

/// Syslog severity of a tracing level.
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The background daemon's writer: stderr before [`detach`], syslog after.
struct DaemonWriter {
    syslog: Option<UnixDatagram>,
    pid: u32,
}

/// One event's worth of output.
enum EventWriter<'a> {
    Stderr(io::Stderr),
    Syslog {
        socket: &'a UnixDatagram,
        header: String,
        line: Vec<u8>,
    },
    Discard,
}

impl DaemonWriter {
    fn writer(&self, level: &Level) -> EventWriter<'_> {
        if !DETACHED.load(Ordering::Acquire) {
            return EventWriter::Stderr(io::stderr());
        }
        match &self.syslog {
            Some(socket) => EventWriter::Syslog {
                socket,
                header: format!("<{}>cosmount[{}]: ", FACILITY_DAEMON * 8 + severity(level), self.pid),
                line: Vec::with_capacity(256),
            },
            None => EventWriter::Discard,
        }
    }
}

impl<'a> MakeWriter<'a> for DaemonWriter {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.writer(&Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.writer(meta.level())
    }
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            EventWriter::Stderr(e) => e.write(buf),
            EventWriter::Syslog { line, .. } => {
                line.extend_from_slice(buf);
                Ok(buf.len())
            }
            EventWriter::Discard => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            EventWriter::Stderr(e) => e.flush(),
            _ => Ok(()),
        }
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if let EventWriter::Syslog { socket, header, line } = self {
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end();
            if text.is_empty() {
                return;
            }
            let mut datagram = std::mem::take(header).into_bytes();
            datagram.extend_from_slice(text.as_bytes());
            // A full or missing syslog must never block or fail a file operation.
            let _ = socket.send(&datagram);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_carry_priority_and_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).expect("bind");
        let client = UnixDatagram::unbound().expect("socket");
        client.connect(&path).expect("connect");
        let w = DaemonWriter {
            syslog: Some(client),
            pid: 42,
        };
        detach();
        {
            let mut e = w.writer(&Level::WARN);
            e.write_all(b"2025 WARN request failed op=\"read\"\n").expect("write");
        }
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(
            std::str::from_utf8(&buf[..n]).expect("utf8"),
            "<28>cosmount[42]: 2025 WARN request failed op=\"read\""
        );
        assert_eq!(severity(&Level::DEBUG), 7);
    }

    #[test]
    fn log_file_directory_is_created() {
        // The subscriber is global, so only check the directory creation through a fresh path;
        // init may fail with "already set" in a test binary that installed one before.
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a/b/cosmount.log");
        let _ = init(Some("info"), false, Some(&file), false);
        assert!(file.parent().expect("parent").is_dir());
        assert!(file.exists());
    }
}
