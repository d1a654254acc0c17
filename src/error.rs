//! `FsError`: what filesystem operations return, with the errno chosen where the error is born.
//!
//! Store errors become `FsError` through one exhaustive `From<StoreError>` (no catch-all arm, so a
//! new kind forces a deliberate errno). The FUSE adapter replies with `errno` and logs `message` at
//! `level`: expected outcomes such as a missing file are DEBUG, failures the user should see are
//! WARN. The table is repeated in the README's "Semantics" section.

use std::fmt;

use tracing::Level;

use crate::store::StoreError;

/// A failed filesystem operation.
#[derive(Debug, Clone)]
pub struct FsError {
    /// The errno handed to the kernel.
    pub errno: i32,
    /// What happened, for the log.
    pub message: String,
    /// The level to log it at.
    pub level: Level,
}

impl FsError {
    /// An error with an explicit errno, logged at WARN.
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno,
            message: message.into(),
            level: Level::WARN,
        }
    }

    /// An error that is an ordinary answer (ENOENT, ENOTEMPTY, ...), logged at DEBUG.
    pub fn quiet(errno: i32, message: impl Into<String>) -> Self {
        Self {
            errno,
            message: message.into(),
            level: Level::DEBUG,
        }
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)
    }
}

impl std::error::Error for FsError {}

/// Build an [`FsError`]: `err!(libc::EIO, "cannot read {}", key)`.
#[macro_export]
macro_rules! err {
    ($errno:expr, $($arg:tt)+) => {
        $crate::error::FsError::new($errno, format!($($arg)+))
    };
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::NotFound { .. } => FsError::quiet(libc::ENOENT, message),
            StoreError::NoSuchBucket { .. } => FsError::new(libc::ENOENT, message),
            StoreError::AccessDenied { .. } => FsError::new(libc::EACCES, message),
            StoreError::Credentials { .. } => FsError::new(libc::EACCES, message),
            StoreError::PreconditionFailed { .. } => FsError::new(libc::ESTALE, message),
            StoreError::Unreachable { .. } => FsError::new(libc::EIO, message),
            StoreError::TimedOut { .. } => FsError::new(libc::ETIMEDOUT, message),
            StoreError::BadResponse { .. } => FsError::new(libc::EIO, message),
            StoreError::InvalidRequest { .. } => FsError::new(libc::EINVAL, message),
            StoreError::Conflict { .. } => FsError::new(libc::EEXIST, message),
            StoreError::BucketExists { .. } => FsError::new(libc::EEXIST, message),
            StoreError::BucketNotEmpty { .. } => FsError::quiet(libc::ENOTEMPTY, message),
            StoreError::NotSupported { .. } => FsError::new(libc::ENOTSUP, message),
            StoreError::Other { .. } => FsError::new(libc::EIO, message),
        }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;
