//! Extended attributes: user metadata, object facts, and WORM controls (the WORM changes and the
//! protection check are `protection.rs`).
//!
//! | name | meaning | access |
//! |---|---|---|
//! | `user.<key>` | user metadata `x-amz-meta-<key>` (not mode/uid/gid/mtime) | read, write, remove |
//! | `user.s3.etag`, `.content-type`, `.storage-class`, `.last-modified`, `.version-id` | object facts | read |
//! | `user.s3.object-lock-mode`, `-retain-until-date`, `-legal-hold-status` | S3 Object Lock | read, write |
//! | `user.cos.retention-period`, `-expiration-date`, `-legal-hold-count` | IBM retention | read (write extends) |
//! | `user.cos.legal-hold.<ID>` | one IBM legal hold (value: when applied) | read, set adds, remove removes |
//! | `user.s3.object-lock.*`, `user.cos.protection.*` | the bucket's configuration (mount root) | read |
//! | `user.cos.location`, `.storage-class`, `.encryption.*` | where the bucket is, its Key Protect key (mount root) | read |
//!
//! Protocol: the `security.`, `trusted.` and `system.` namespaces (SELinux labels, capabilities,
//! POSIX ACLs) are not supported: reading or setting them fails at once with ENOTSUP, which tells
//! `ls -l`, `cp -a` and `rsync -AX` that the file system has none, so they stop asking per file
//! (ENODATA would cost a round trip per file on every `ls -l`: the kernel caches no xattrs). The
//! kernel also asks for `security.capability` before every write. A file's
//! attributes cost at most one HEAD (plus one `?legalHold` GET on IBM buckets) and are cached for
//! the metadata TTL. Size-0 probes, ERANGE and ENODATA are handled by the FUSE adapter.
//!
//! This file reads them (getxattr, listxattr, the cached snapshot); `set.rs` changes them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Instant;

use super::inode::Kind;
use super::{lock, meta, path, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::worm::{rfc3339, Worm};
use crate::store::{ObjectMeta, ObjectStore, StoreError};

mod set;

/// IBM's limit of legal holds per object.
pub const MAX_HOLDS: usize = 100;
pub(super) const XATTR_CREATE: i32 = libc::XATTR_CREATE;
pub(super) const XATTR_REPLACE: i32 = libc::XATTR_REPLACE;

/// What one object's attributes are, read once.
#[derive(Clone, Debug)]
pub(super) struct XattrSnapshot {
    pub meta: ObjectMeta,
    pub holds: Vec<crate::store::worm::LegalHold>,
    pub at: Instant,
}

/// Whether attribute `name` can exist here: only the `user.` namespace is served
/// (`security.*`, `system.*` and `trusted.*` never are).
fn served(name: &[u8]) -> bool {
    name.starts_with(b"user.")
}

pub(super) fn einval(msg: String) -> FsError {
    FsError::new(libc::EINVAL, msg)
}

pub(super) fn eperm(msg: String) -> FsError {
    FsError::new(libc::EPERM, msg)
}

pub(super) fn text(v: &[u8]) -> FsResult<String> {
    String::from_utf8(v.to_vec())
        .map(|s| s.trim().to_string())
        .map_err(|_| einval("the value is not UTF-8 text".into()))
}

impl<S: ObjectStore> S3Fs<S> {
    /// HEAD (and `?legalHold` on IBM buckets) of a file, cached for the metadata TTL.
    pub(super) async fn snapshot(&self, ino: u64, fresh: bool) -> FsResult<XattrSnapshot> {
        if !fresh {
            if let Some(s) = lock(&self.xattr_cache)
                .get(&ino)
                .filter(|s| s.at.elapsed() < self.config.metadata_ttl)
            {
                return Ok(s.clone());
            }
        }
        let inode = self.inode(ino)?;
        let key = path::object_key(&self.config.prefix, &inode.path);
        let meta = self.store.head_object(&key).await?;
        let holds = if matches!(self.worm(), Worm::CosRetention { .. }) && meta.extra().cos.hold_count.unwrap_or(0) > 0
        {
            match self.store.cos_legal_holds(&key).await {
                Ok(h) => h,
                Err(StoreError::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        } else {
            Vec::new()
        };
        let snap = XattrSnapshot {
            meta,
            holds,
            at: Instant::now(),
        };
        lock(&self.xattr_cache).insert(ino, snap.clone());
        Ok(snap)
    }

    fn forget_snapshot(&self, ino: u64) {
        lock(&self.xattr_cache).remove(&ino);
    }

    /// All attributes of `ino` as name → value.
    async fn xattrs(&self, ino: u64) -> FsResult<BTreeMap<String, Vec<u8>>> {
        let inode = self.inode(ino)?;
        let mut out = BTreeMap::new();
        if inode.stat.kind == Kind::Dir {
            if ino == super::inode::ROOT_INO {
                self.bucket_xattrs(&mut out);
                self.bucket_fact_xattrs(&mut out).await;
            }
            return Ok(out);
        }
        if inode.stat.kind == Kind::Symlink {
            return Ok(out);
        }
        // A file open for writing here shows the metadata its upload will store; a new one has
        // no object yet, so no object facts either.
        let pending = match self.open_file(ino) {
            Some(of) => Some(of.lock().await.metadata.clone()),
            None => None,
        };
        let snap = match self.snapshot(ino, false).await {
            Ok(snap) => Some(snap),
            Err(e) if pending.is_some() && e.errno == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        let user = pending.as_ref().or(snap.as_ref().map(|s| &s.meta.metadata));
        for (k, v) in user.into_iter().flatten() {
            if !meta::NAMES.contains(&k.as_str()) {
                out.insert(format!("user.{k}"), v.as_bytes().to_vec());
            }
        }
        let Some(snap) = snap else {
            return Ok(out);
        };
        let m = &snap.meta;
        let mut put = |k: &str, v: String| {
            out.insert(k.to_string(), v.into_bytes());
        };
        if let Some(e) = &m.etag {
            put("user.s3.etag", e.trim_matches('"').to_string());
        }
        put(
            "user.s3.content-type",
            m.content_type.clone().unwrap_or_else(|| "binary/octet-stream".into()),
        );
        put(
            "user.s3.storage-class",
            m.extra().storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
        );
        put("user.s3.last-modified", rfc3339(m.last_modified));
        if let Some(v) = &m.extra().version_id {
            put("user.s3.version-id", v.clone());
        }
        match &self.worm() {
            Worm::ObjectLock { .. } => {
                if let Some(mode) = &m.extra().lock.mode {
                    put("user.s3.object-lock-mode", mode.clone());
                }
                if let Some(u) = m.extra().lock.retain_until {
                    put("user.s3.object-lock-retain-until-date", rfc3339(u));
                }
                let on = m.extra().lock.legal_hold == Some(true);
                put(
                    "user.s3.object-lock-legal-hold-status",
                    if on { "ON" } else { "OFF" }.into(),
                );
            }
            Worm::CosRetention { .. } => {
                let c = &m.extra().cos;
                if let Some(p) = c.period {
                    put("user.cos.retention-period", p.to_string());
                }
                if let Some(e) = c.expiration {
                    put("user.cos.retention-expiration-date", rfc3339(e));
                }
                put("user.cos.legal-hold-count", c.hold_count.unwrap_or(0).to_string());
                for h in &snap.holds {
                    put(&format!("user.cos.legal-hold.{}", h.id), h.date.clone());
                }
            }
            Worm::None => {}
        }
        Ok(out)
    }

    fn bucket_xattrs(&self, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut put = |k: &str, v: String| {
            out.insert(k.to_string(), v.into_bytes());
        };
        match &self.worm() {
            Worm::ObjectLock {
                default_mode,
                default_days,
                default_years,
            } => {
                put("user.s3.object-lock.enabled", "Enabled".into());
                if let Some(m) = default_mode {
                    put("user.s3.object-lock.default-mode", m.clone());
                }
                if let Some(d) = default_days {
                    put("user.s3.object-lock.default-days", d.to_string());
                }
                if let Some(y) = default_years {
                    put("user.s3.object-lock.default-years", y.to_string());
                }
            }
            Worm::CosRetention {
                minimum_days,
                default_days,
                maximum_days,
                permanent,
            } => {
                put("user.cos.protection.status", "Retention".into());
                put("user.cos.protection.minimum-retention-days", minimum_days.to_string());
                put("user.cos.protection.default-retention-days", default_days.to_string());
                put("user.cos.protection.maximum-retention-days", maximum_days.to_string());
                put("user.cos.protection.permanent-retention", permanent.to_string());
            }
            Worm::None => {}
        }
    }

    /// getxattr: the value of `name`.
    pub async fn getxattr(&self, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        let name = name
            .to_str()
            .ok_or_else(|| FsError::quiet(libc::ENODATA, "non-UTF-8 attribute name"))?;
        if !served(name.as_bytes()) {
            // `ls -l` asks for security.selinux and system.posix_acl_access: ENOTSUP (not
            // ENODATA) makes it stop asking after the first file.
            return Err(FsError::quiet(
                libc::ENOTSUP,
                format!("{name}: only user.* attributes exist here"),
            ));
        }
        self.xattrs(ino)
            .await?
            .remove(name)
            .ok_or_else(|| FsError::quiet(libc::ENODATA, format!("no attribute {name}")))
    }

    /// listxattr: every name, NUL-terminated.
    pub async fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let mut out = Vec::new();
        for k in self.xattrs(ino).await?.keys() {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
        }
        Ok(out)
    }
}
