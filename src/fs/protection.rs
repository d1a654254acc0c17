//! WORM controls: changes to S3 Object Lock retention and legal holds and to IBM COS retention
//! and legal holds made through `setfattr` (`user.s3.object-lock-*`, `user.cos.*`), each checked
//! against the rules before it is sent (retention only grows unless the mount may bypass
//! GOVERNANCE; hold IDs of 1-64 allowed characters, at most [`MAX_HOLDS`]), and the check that
//! refuses deleting, overwriting or renaming a retained or held object with `EPERM` before any
//! request that would change it.

use std::time::SystemTime;

use tracing::warn;

use super::xattr::{einval, eperm, text, XattrSnapshot, MAX_HOLDS, XATTR_CREATE, XATTR_REPLACE};
use super::{path, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::worm::{check_hold_id, parse_time, rfc3339, Worm};
use crate::store::{ObjectStore, StoreError};

impl<S: ObjectStore> S3Fs<S> {
    pub(super) async fn set_s3(&self, key: &str, snap: &XattrSnapshot, what: &str, value: &[u8]) -> FsResult<()> {
        if !matches!(self.worm(), Worm::ObjectLock { .. }) && what.starts_with("object-lock") {
            return Err(FsError::new(
                libc::ENOTSUP,
                format!("user.s3.{what}: the bucket has no Object Lock"),
            ));
        }
        let lock_state = &snap.meta.extra().lock;
        match what {
            "object-lock-legal-hold-status" => {
                let v = text(value)?.to_ascii_uppercase();
                let on = match v.as_str() {
                    "ON" => true,
                    "OFF" => false,
                    _ => {
                        return Err(einval(format!(
                            "user.s3.object-lock-legal-hold-status must be ON or OFF, not {v:?}"
                        )))
                    }
                };
                Ok(self.store.put_legal_hold(key, on).await?)
            }
            "object-lock-retain-until-date" => {
                let v = text(value)?;
                let until = parse_time(&v)
                    .ok_or_else(|| einval(format!("{v:?} is not an RFC 3339 date such as 2031-01-01T00:00:00Z")))?;
                if let Some(current) = lock_state.retain_until {
                    if until < current && !self.config.bypass_governance {
                        warn!(
                            key,
                            "retention can only be extended: {} is before {}",
                            rfc3339(until),
                            rfc3339(current)
                        );
                        return Err(eperm(format!(
                            "{key} is retained until {}; retention can only be extended (shortening GOVERNANCE \
                             retention needs the --bypass-governance-retention mount option)",
                            rfc3339(current)
                        )));
                    }
                }
                let mode = lock_state
                    .mode
                    .clone()
                    .or_else(|| self.default_lock_mode())
                    .unwrap_or_else(|| "GOVERNANCE".into());
                let bypass = self.config.bypass_governance && lock_state.retain_until.is_some_and(|c| until < c);
                Ok(self.store.put_retention(key, &mode, until, bypass).await?)
            }
            "object-lock-mode" => {
                let mode = text(value)?.to_ascii_uppercase();
                if mode != "GOVERNANCE" && mode != "COMPLIANCE" {
                    return Err(einval(format!(
                        "user.s3.object-lock-mode must be GOVERNANCE or COMPLIANCE, not {mode:?}"
                    )));
                }
                let until = lock_state.retain_until.ok_or_else(|| {
                    einval("set user.s3.object-lock-retain-until-date first: a mode needs a retention date".into())
                })?;
                Ok(self.store.put_retention(key, &mode, until, false).await?)
            }
            _ => Err(eperm(format!("user.s3.{what} is read-only"))),
        }
    }

    pub(super) fn default_lock_mode(&self) -> Option<String> {
        match &self.worm() {
            Worm::ObjectLock { default_mode, .. } => default_mode.clone(),
            _ => None,
        }
    }

    pub(super) async fn set_cos(&self, key: &str, snap: &XattrSnapshot, what: &str, value: &[u8]) -> FsResult<()> {
        if !matches!(self.worm(), Worm::CosRetention { .. }) {
            return Err(FsError::new(
                libc::ENOTSUP,
                format!("user.cos.{what}: the bucket has no IBM retention policy"),
            ));
        }
        let c = &snap.meta.extra().cos;
        match what {
            "retention-period" => {
                let v = text(value)?;
                let period: i64 = v
                    .parse()
                    .map_err(|_| einval(format!("{v:?} is not a number of seconds")))?;
                if let Some(current) = c.period {
                    if current == -1 || (period != -1 && period < current) {
                        warn!(key, "retention can only grow: {key} has {current} s, asked {period} s");
                        return Err(eperm(format!("retention of {key} can only grow (it is {current} s)")));
                    }
                    if period == current {
                        return Ok(());
                    }
                }
                Ok(self.store.cos_extend_retention(key, Some(period), None).await?)
            }
            "retention-expiration-date" => {
                let v = text(value)?;
                let until = parse_time(&v).ok_or_else(|| einval(format!("{v:?} is not an RFC 3339 date")))?;
                if let Some(current) = c.expiration {
                    if until < current {
                        warn!(key, "retention can only grow: {key} expires {}", rfc3339(current));
                        return Err(eperm(format!(
                            "retention of {key} can only grow (it expires {})",
                            rfc3339(current)
                        )));
                    }
                }
                Ok(self.store.cos_extend_retention(key, None, Some(until)).await?)
            }
            _ => Err(eperm(format!("user.cos.{what} is read-only"))),
        }
    }

    pub(super) async fn add_hold(&self, key: &str, snap: &XattrSnapshot, id: &str, flags: i32) -> FsResult<()> {
        if !matches!(self.worm(), Worm::CosRetention { .. }) {
            return Err(FsError::new(
                libc::ENOTSUP,
                "IBM legal holds need a bucket with an IBM retention policy",
            ));
        }
        check_hold_id(id).map_err(einval)?;
        let exists = snap.holds.iter().any(|h| h.id == id);
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(FsError::quiet(libc::ENODATA, format!("{key} has no legal hold {id}")));
        }
        if exists {
            if flags & XATTR_CREATE != 0 {
                return Err(FsError::quiet(
                    libc::EEXIST,
                    format!("{key} already has legal hold {id}"),
                ));
            }
            return Ok(()); // setting an existing hold again changes nothing
        }
        if snap.holds.len() >= MAX_HOLDS {
            return Err(FsError::new(
                libc::ENOSPC,
                format!("{key} already has {MAX_HOLDS} legal holds, IBM's limit"),
            ));
        }
        match self.store.cos_legal_hold(key, id, true).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(FsError::quiet(
                libc::EEXIST,
                format!("{key} already has legal hold {id}"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn remove_hold(&self, key: &str, snap: &XattrSnapshot, id: &str) -> FsResult<()> {
        if !matches!(self.worm(), Worm::CosRetention { .. }) {
            return Err(FsError::quiet(libc::ENODATA, "no such legal hold"));
        }
        check_hold_id(id).map_err(einval)?;
        if !snap.holds.iter().any(|h| h.id == id) {
            return Err(FsError::quiet(libc::ENODATA, format!("{key} has no legal hold {id}")));
        }
        match self.store.cos_legal_hold(key, id, false).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound { .. }) => {
                Err(FsError::quiet(libc::ENODATA, format!("{key} has no legal hold {id}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Refuse to delete, overwrite, truncate, rename or rewrite a retained or held object.
    pub(super) async fn check_not_protected(&self, rel: &str, what: &str) -> FsResult<()> {
        self.check_key_not_protected(&path::object_key(&self.config.prefix, rel), what)
            .await
    }

    /// Same, by key (one HEAD, only on buckets with a WORM scheme).
    pub(super) async fn check_key_not_protected(&self, key: &str, what: &str) -> FsResult<()> {
        if self.worm() == Worm::None {
            return Ok(());
        }
        let meta = match self.store.head_object(key).await {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(why) = meta.extra().protected_because(SystemTime::now()) {
            warn!(key, "refusing to {what} {key}: {why}");
            return Err(eperm(format!("cannot {what} {key}: {why}")));
        }
        Ok(())
    }
}
