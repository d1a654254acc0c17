//! Changing extended attributes: setxattr and removexattr, which send `user.s3.*` and `user.cos.*`
//! to the WORM controls (`protection.rs`) and rewrite user metadata (`user.<key>`) with a
//! CopyObject onto itself, or, on a file open for writing here, in the metadata its upload will
//! store. `XATTR_CREATE` / `XATTR_REPLACE` are checked against the current value. On the mount
//! root, `user.cos.protection.*` sets the bucket's retention policy (`bucket_policy.rs`).

use std::ffi::OsStr;
use std::time::{Instant, SystemTime};

use tracing::warn;

use super::super::inode::{Kind, ROOT_INO};
use super::super::{lock, meta, path, S3Fs};
use super::{einval, eperm, XattrSnapshot, XATTR_CREATE, XATTR_REPLACE};
use crate::error::{FsError, FsResult};
use crate::store::{ObjectStore, PutOptions};

impl<S: ObjectStore> S3Fs<S> {
    /// setxattr: set `name` to `value` (`flags`: XATTR_CREATE / XATTR_REPLACE).
    pub async fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> FsResult<()> {
        let _change = self.listings.changing();
        let name = name
            .to_str()
            .ok_or_else(|| einval("attribute names must be UTF-8".into()))?;
        let Some(rest) = name.strip_prefix("user.") else {
            return Err(FsError::quiet(
                libc::ENOTSUP,
                format!("{name}: only user.* attributes can be set"),
            ));
        };
        self.check_writable()?;
        let inode = self.inode(ino)?;
        if ino == ROOT_INO {
            if let Some(what) = rest.strip_prefix("cos.protection.") {
                return self.set_bucket_protection(what, value).await;
            }
            if super::super::bucket_policy::is_bucket_fact(rest) {
                return Err(FsError::new(
                    libc::EPERM,
                    format!(
                        "{name} is set when the bucket is created (mkdir on an --all-buckets mount) and cannot change"
                    ),
                ));
            }
        }
        if is_object_fact(rest) {
            // ENOTSUP, not EPERM: `cp -a`, `mv` and `rsync -X` from another mount (or bucket)
            // carry these names along, and coreutils reports every xattr error but ENOTSUP.
            return Err(FsError::quiet(
                libc::ENOTSUP,
                format!("{name} is a fact of the stored object, set by the server: it cannot be set"),
            ));
        }
        if inode.stat.kind != Kind::File {
            return Err(FsError::new(
                libc::ENOTSUP,
                format!("{name}: attributes can be set on files only"),
            ));
        }
        if !rest.starts_with("s3.") && !rest.starts_with("cos.") {
            if let Some(done) = self.change_pending_metadata(ino, rest, Some(value), flags).await {
                return done;
            }
        }
        // Object facts, retention and holds need the object: a file waiting in the write cache
        // goes up first.
        self.sync_pending(ino).await?;
        let key = path::object_key(&self.config.prefix, &inode.path);
        let snap = self.snapshot(ino, true).await?;
        let result = if let Some(id) = rest.strip_prefix("cos.legal-hold.") {
            self.add_hold(&key, &snap, id, flags).await
        } else if let Some(fact) = rest.strip_prefix("s3.") {
            self.set_s3(&key, &snap, fact, value).await
        } else if let Some(what) = rest.strip_prefix("cos.") {
            self.set_cos(&key, &snap, what, value).await
        } else {
            self.set_user_metadata(ino, &key, &snap, rest, Some(value), flags).await
        };
        self.forget_snapshot(ino);
        result
    }

    /// removexattr: remove `name`.
    pub async fn removexattr(&self, ino: u64, name: &OsStr) -> FsResult<()> {
        let _change = self.listings.changing();
        let name = name
            .to_str()
            .ok_or_else(|| FsError::quiet(libc::ENODATA, "non-UTF-8 attribute name"))?;
        let Some(rest) = name.strip_prefix("user.") else {
            return Err(FsError::quiet(
                libc::ENOTSUP,
                format!("{name}: only user.* attributes exist here"),
            ));
        };
        self.check_writable()?;
        let inode = self.inode(ino)?;
        if ino == ROOT_INO && rest.starts_with("cos.protection.") && self.worm().cos_policy().is_some() {
            return Err(FsError::new(
                libc::EPERM,
                format!("{name}: a bucket's retention policy is never removed"),
            ));
        }
        if inode.stat.kind != Kind::File {
            return Err(FsError::quiet(libc::ENODATA, format!("no attribute {name}")));
        }
        if !rest.starts_with("s3.") && !rest.starts_with("cos.") {
            if let Some(done) = self.change_pending_metadata(ino, rest, None, 0).await {
                return done;
            }
        }
        // Object facts, retention and holds need the object: a file waiting in the write cache
        // goes up first.
        self.sync_pending(ino).await?;
        let key = path::object_key(&self.config.prefix, &inode.path);
        let snap = self.snapshot(ino, true).await?;
        let result = if let Some(id) = rest.strip_prefix("cos.legal-hold.") {
            self.remove_hold(&key, &snap, id).await
        } else if rest == "s3.object-lock-legal-hold-status" {
            self.set_s3(&key, &snap, "object-lock-legal-hold-status", b"OFF").await
        } else if rest.starts_with("s3.") || rest.starts_with("cos.") {
            Err(eperm(format!("{name} cannot be removed")))
        } else {
            self.set_user_metadata(ino, &key, &snap, rest, None, 0).await
        };
        self.forget_snapshot(ino);
        result
    }

    /// On a file open for writing here, set (`Some`) or remove (`None`) user metadata `name` in
    /// what its upload will store: changing the object now would be undone by that upload, and a
    /// new file has no object yet. `None` when the file is not open for writing.
    async fn change_pending_metadata(
        &self,
        ino: u64,
        name: &str,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Option<FsResult<()>> {
        let of = self.open_file(ino)?;
        let change = async {
            let (name, value) = user_meta_change(name, value)?;
            let mut of = of.lock().await;
            check_flags(&name, of.metadata.contains_key(&name), flags, value.is_none())?;
            match value {
                Some(v) => of.metadata.insert(name, v),
                None => of.metadata.remove(&name),
            };
            of.staged.dirty = true;
            of.written = true;
            of.journaled = false;
            if of.handles == 0 && of.pending.is_some() {
                // Closed into the write cache: the change makes a new entry.
                self.store_at_close(ino, &mut of).await?;
            }
            Ok(())
        };
        Some(change.await)
    }

    async fn set_user_metadata(
        &self,
        ino: u64,
        key: &str,
        snap: &XattrSnapshot,
        name: &str,
        value: Option<&[u8]>,
        flags: i32,
    ) -> FsResult<()> {
        let (name, value) = user_meta_change(name, value)?;
        let exists = snap.meta.metadata.contains_key(&name);
        check_flags(&name, exists, flags, value.is_none())?;
        if let Some(why) = snap.meta.extra().protected_because(SystemTime::now()) {
            warn!(key, "refusing to rewrite the metadata of {key}: {why}");
            return Err(eperm(format!("cannot rewrite the metadata of {key}: {why}")));
        }
        let mut metadata = snap.meta.metadata.clone();
        match value {
            Some(v) => {
                metadata.insert(name, v);
            }
            None => {
                metadata.remove(&name);
            }
        }
        let opts = PutOptions {
            metadata,
            content_type: snap.meta.content_type.clone(),
        };
        let etag = self
            .store
            .copy_object(key, key, snap.meta.etag.as_deref(), Some(&opts))
            .await?;
        let mut table = lock(&self.inodes);
        if let Some(i) = table.get(ino) {
            let mut stat = i.stat.clone();
            stat.etag = etag;
            table.set_stat(ino, stat, Instant::now() + self.config.metadata_ttl);
        }
        Ok(())
    }
}

/// A change to user metadata `name` (without `user.`), checked: the S3 name (lower case) and
/// the value as text (`None`: remove).
fn user_meta_change(name: &str, value: Option<&[u8]>) -> FsResult<(String, Option<String>)> {
    let name = name.to_ascii_lowercase();
    if meta::NAMES.contains(&name.as_str()) {
        return Err(eperm(format!(
            "user.{name} is kept by cosmount for POSIX attributes; use chmod/chown/touch"
        )));
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(einval(format!(
            "user.{name}: S3 metadata names are letters, digits, '-', '_' and '.'"
        )));
    }
    let value = match value {
        Some(v) => {
            let v =
                String::from_utf8(v.to_vec()).map_err(|_| einval("S3 metadata values must be UTF-8 text".into()))?;
            if v.chars().any(|c| c.is_control()) {
                return Err(einval(format!(
                    "user.{name}: control characters cannot be sent as S3 metadata"
                )));
            }
            Some(v)
        }
        None => None,
    };
    Ok((name, value))
}

/// `XATTR_CREATE` / `XATTR_REPLACE` (and removal) against whether `name` exists.
fn check_flags(name: &str, exists: bool, flags: i32, removing: bool) -> FsResult<()> {
    if flags & XATTR_CREATE != 0 && exists {
        return Err(FsError::quiet(libc::EEXIST, format!("user.{name} exists")));
    }
    if (flags & XATTR_REPLACE != 0 || removing) && !exists {
        return Err(FsError::quiet(libc::ENODATA, format!("no attribute user.{name}")));
    }
    Ok(())
}

/// Names whose values the server sets on every object (read-only everywhere).
fn is_object_fact(name: &str) -> bool {
    matches!(
        name,
        "s3.etag"
            | "s3.content-type"
            | "s3.storage-class"
            | "s3.last-modified"
            | "s3.version-id"
            | "cos.legal-hold-count"
    )
}
