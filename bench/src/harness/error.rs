//! The harness's one error type. Each variant maps to the exit code the bash harness used:
//! a usage mistake exits 2, anything that stops the run (the bash `die`) exits 1, a signal exits
//! 128 + its number. Failed *checks* are not errors: they are recorded in the results and decide
//! the exit code at the end (see `results::Results::failed_core`).

use std::fmt;

/// Why the harness stopped before the report.
#[derive(Debug)]
pub enum Error {
    /// A bad argument or override (exit 2), with the message to print.
    Usage(String),
    /// The run cannot go on (exit 1): a missing tool, a server that did not start, a failed build.
    Fatal(String),
    /// An I/O error on the harness's own files (exit 1).
    Io { what: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Fatal(_) | Error::Io { .. } => 1,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Fatal(m) => f.write_str(m),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `die`: a fatal error from a message.
pub fn fatal(msg: impl Into<String>) -> Error {
    Error::Fatal(msg.into())
}
