//! Names and keys: which S3 keys can be file names, and how paths join onto the mount prefix.
//!
//! Pitfalls of mapping keys to names (all skipped in listings with a DEBUG log, never an error
//! for the whole directory):
//! 1. empty segments (`a//b`) give an empty name;
//! 2. `.` and `..` cannot be names;
//! 3. a segment longer than 255 bytes is no valid file name on Linux;
//! 4. a key equal to the directory's own prefix (`dir/`) is the directory's marker, not a child.
//!
//! Names asked for by the kernel must be UTF-8 (S3 keys are UTF-8): other names get `EINVAL`.

use std::ffi::OsStr;

use crate::error::{FsError, FsResult};

/// Longest file name Linux accepts.
pub const NAME_MAX: usize = 255;
/// Longest S3 key.
pub const KEY_MAX: usize = 1024;

/// Check a name the kernel passed (lookup, create, ...), returning it as `&str`.
pub fn check_name(name: &OsStr) -> FsResult<&str> {
    let Some(s) = name.to_str() else {
        return Err(FsError::new(
            libc::EINVAL,
            format!("name {name:?} is not valid UTF-8; S3 keys must be UTF-8"),
        ));
    };
    if s.len() > NAME_MAX {
        return Err(FsError::new(
            libc::ENAMETOOLONG,
            format!("name of {} bytes is longer than {NAME_MAX}", s.len()),
        ));
    }
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(FsError::new(libc::EINVAL, format!("{s:?} cannot be a file name")));
    }
    Ok(s)
}

/// Whether a listing segment can be shown as a file name.
pub fn listable(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && name.len() <= NAME_MAX && !name.contains('\0')
}

/// Join a directory path (relative to the mount root, "" for the root) and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Full S3 key of a path relative to the mount root.
pub fn object_key(prefix: &str, rel: &str) -> String {
    format!("{prefix}{rel}")
}

/// S3 prefix listing the children of a directory path ("" is the mount root).
pub fn dir_prefix(prefix: &str, rel: &str) -> String {
    if rel.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}{rel}/")
    }
}

/// Normalise a user-given mount prefix: no leading slash, exactly one trailing slash (or empty).
pub fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(check_name(OsStr::new("a.txt")).is_ok());
        assert_eq!(
            check_name(OsStr::new(&"x".repeat(256))).unwrap_err().errno,
            libc::ENAMETOOLONG
        );
        assert_eq!(check_name(OsStr::new("..")).unwrap_err().errno, libc::EINVAL);
        assert!(!listable("") && !listable(".") && !listable("..") && !listable(&"y".repeat(256)));
        assert!(listable("a-") && listable(&"y".repeat(255)));
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(dir_prefix("p/", ""), "p/");
        assert_eq!(dir_prefix("p/", "d"), "p/d/");
        assert_eq!(normalize_prefix("/some/prefix"), "some/prefix/");
        assert_eq!(normalize_prefix("x/"), "x/");
        assert_eq!(normalize_prefix(""), "");
    }
}
