//! The bucket's IBM retention policy, set with `setfattr` on the mount root:
//!
//! | attribute | value |
//! |---|---|
//! | `user.cos.protection.minimum-retention-days` | days |
//! | `user.cos.protection.default-retention-days` | days |
//! | `user.cos.protection.maximum-retention-days` | days |
//! | `user.cos.protection.permanent-retention` | `true` (once on, it stays on) |
//! | `user.cos.protection.status` | `Retention` (a policy is never disabled) |
//!
//! Each change is checked against IBM's rules first (`store/cos_policy.rs`: `EINVAL` for values
//! out of range or out of order, `EPERM` for what IBM never allows), then sent as `PUT ?protection`
//! and read back: a server that answers 200 but keeps no policy (plain S3 servers ignore the
//! sub-resource) is reported as `ENOTSUP`, never as success. On a bucket without a policy the
//! values not set yet are 0, so `maximum-retention-days` is set first. The mount's own view of the
//! bucket (retention checks before deletes, the root's xattrs) follows at once.
//!
//! Also here, read-only on the root: what HEAD bucket and `GET ?location` say of the bucket
//! (`user.cos.location`, `user.cos.storage-class`, `user.cos.encryption.*`), read once.

use tracing::info;

use super::{lock, S3Fs};
use crate::error::{FsError, FsResult};
use crate::store::buckets::BucketFacts;
use crate::store::cos_policy::CosPolicy;
use crate::store::worm::Worm;
use crate::store::{ObjectStore, StoreError};

/// Root attributes that only bucket creation sets.
pub(super) fn is_bucket_fact(name: &str) -> bool {
    matches!(name, "cos.location" | "cos.storage-class") || name.starts_with("cos.encryption.")
}

/// The settable names under `user.cos.protection.`.
const SETTABLE: [&str; 5] = [
    "minimum-retention-days",
    "default-retention-days",
    "maximum-retention-days",
    "permanent-retention",
    "status",
];

fn invalid(what: &str, message: String) -> FsError {
    FsError::new(libc::EINVAL, format!("user.cos.protection.{what}: {message}"))
}

fn days(what: &str, value: &str) -> FsResult<i64> {
    value
        .parse()
        .map_err(|_| invalid(what, format!("{value:?} is not a number of days")))
}

impl<S: ObjectStore> S3Fs<S> {
    /// The bucket's immutability scheme as the mount knows it now.
    pub(crate) fn worm(&self) -> Worm {
        lock(&self.worm).clone()
    }

    /// setxattr of `user.cos.protection.<what>` on the mount root.
    pub(super) async fn set_bucket_protection(&self, what: &str, value: &[u8]) -> FsResult<()> {
        let value = std::str::from_utf8(value)
            .map_err(|_| invalid(what, "the value must be text".into()))?
            .trim();
        let worm = self.worm();
        if matches!(worm, Worm::ObjectLock { .. }) {
            return Err(invalid(
                what,
                "this bucket uses S3 Object Lock, which excludes an IBM retention policy".into(),
            ));
        }
        let current = worm.cos_policy();
        let mut new = current.unwrap_or(CosPolicy {
            minimum_days: 0,
            default_days: 0,
            maximum_days: 0,
            permanent: false,
        });
        match what {
            "minimum-retention-days" => new.minimum_days = days(what, value)?,
            "default-retention-days" => new.default_days = days(what, value)?,
            "maximum-retention-days" => new.maximum_days = days(what, value)?,
            "permanent-retention" => {
                new.permanent = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid(what, format!("{value:?}: the value is true or false"))),
                }
            }
            "status" => match value {
                "Retention" => {}
                "Disabled" if current.is_none() => return Ok(()),
                "Disabled" => {
                    return Err(FsError::new(
                        libc::EPERM,
                        "user.cos.protection.status: a bucket's retention policy is never disabled",
                    ))
                }
                _ => return Err(invalid(what, format!("{value:?}: the value is Retention"))),
            },
            _ => {
                return Err(FsError::new(
                    libc::EPERM,
                    format!(
                        "user.cos.protection.{what} cannot be set (settable: {})",
                        SETTABLE.join(", ")
                    ),
                ))
            }
        }
        new.check_change_from(current.as_ref())
            .map_err(|r| FsError::new(r.errno(), format!("user.cos.protection.{what}: {r}")))?;
        if current == Some(new) {
            return Ok(());
        }
        self.store.put_cos_protection(&new).await?;
        let now = self.store.bucket_worm().await?;
        if now.cos_policy() != Some(new) {
            return Err(FsError::new(
                libc::ENOTSUP,
                format!(
                    "{} accepted the retention policy but does not report it back: it keeps no IBM retention policies",
                    self.store.describe()
                ),
            ));
        }
        info!(
            minimum_days = new.minimum_days,
            default_days = new.default_days,
            maximum_days = new.maximum_days,
            permanent = new.permanent,
            "the bucket's retention policy is set"
        );
        *lock(&self.worm) = now;
        Ok(())
    }

    /// The bucket's location, storage class and Key Protect state as root attributes: one HEAD
    /// bucket and one `GET ?location`, the first time they are asked for (a failure is retried
    /// at the next listing; a server without them shows none).
    pub(super) async fn bucket_fact_xattrs(&self, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let facts = self
            .facts
            .get_or_try_init(|| async {
                match self.store.bucket_facts().await {
                    Ok(f) => Ok(f),
                    Err(StoreError::NotSupported { .. }) => Ok(BucketFacts::default()),
                    Err(e) => Err(e),
                }
            })
            .await;
        let facts = match facts {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot read the bucket's location and encryption: {e}");
                return;
            }
        };
        let mut put = |k: &str, v: &str| {
            out.insert(k.to_string(), v.as_bytes().to_vec());
        };
        if let Some(l) = &facts.location {
            put("user.cos.location", l);
        }
        if let Some(c) = facts.storage_class() {
            put("user.cos.storage-class", c);
        }
        if let Some(on) = facts.kp_enabled {
            put("user.cos.encryption.key-protect", if on { "true" } else { "false" });
            if on {
                // AES256 is the only algorithm IBM's SSE-KP has; HEAD bucket does not repeat it.
                put(
                    "user.cos.encryption.algorithm",
                    facts.kp_algorithm.as_deref().unwrap_or("AES256"),
                );
            }
        }
        if let Some(crn) = &facts.kp_root_key_crn {
            put("user.cos.encryption.root-key-crn", crn);
        }
    }
}
