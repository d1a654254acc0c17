//! Immutability (WORM) on the wire: S3 Object Lock and IBM COS legacy retention policies.
//!
//! The types here say what a HEAD reports about an object's protection, what a bucket is
//! configured for, and which headers new uploads carry. The wire formats are those of
//! `shared/IMMUTABILITY.md`: Object Lock through aws-sdk-s3's own operations; IBM's
//! `?protection`, `?legalHold`, `?extendRetention` and `Retention-*` headers through customised
//! SDK requests (so they are signed, retried and authenticated like every other request).

use std::time::SystemTime;

/// Object Lock state of an object version (from HEAD).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockState {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: Option<String>,
    pub retain_until: Option<SystemTime>,
    pub legal_hold: Option<bool>,
}

/// IBM legacy retention state of an object (from HEAD's `Retention-*` headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CosRetention {
    /// Seconds; -1 is indefinite.
    pub period: Option<i64>,
    pub expiration: Option<SystemTime>,
    pub hold_count: Option<u32>,
}

/// What an object known only from a listing has: nothing is known.
pub static NO_EXTRA: ObjectExtra = ObjectExtra {
    storage_class: None,
    version_id: None,
    lock: LockState {
        mode: None,
        retain_until: None,
        legal_hold: None,
    },
    cos: CosRetention {
        period: None,
        expiration: None,
        hold_count: None,
    },
};

/// What a HEAD says beyond size and metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectExtra {
    pub storage_class: Option<String>,
    pub version_id: Option<String>,
    pub lock: LockState,
    pub cos: CosRetention,
}

impl ObjectExtra {
    /// Why the object may not be deleted, overwritten or rewritten now, if it may not.
    pub fn protected_because(&self, now: SystemTime) -> Option<String> {
        if self.lock.legal_hold == Some(true) {
            return Some("it is under an Object Lock legal hold".into());
        }
        if let Some(until) = self.lock.retain_until.filter(|u| *u > now) {
            return Some(format!(
                "it is retained ({}) until {}",
                self.lock.mode.as_deref().unwrap_or("Object Lock"),
                rfc3339(until)
            ));
        }
        if let Some(n) = self.cos.hold_count.filter(|n| *n > 0) {
            return Some(format!("it has {n} legal hold(s)"));
        }
        if self.cos.period == Some(-1) {
            return Some("it is retained indefinitely".into());
        }
        if let Some(until) = self.cos.expiration.filter(|u| *u > now) {
            return Some(format!("it is retained until {}", rfc3339(until)));
        }
        None
    }
}

/// The bucket's immutability scheme (detected at mount time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Worm {
    /// Neither.
    #[default]
    None,
    /// S3 Object Lock, with its default retention rule if any.
    ObjectLock {
        default_mode: Option<String>,
        default_days: Option<i32>,
        default_years: Option<i32>,
    },
    /// IBM COS retention policy (days).
    CosRetention {
        minimum_days: i64,
        default_days: i64,
        maximum_days: i64,
        permanent: bool,
    },
}

/// Retention and hold headers for new uploads (mount options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WormHeaders {
    /// Object Lock mode and date (`x-amz-object-lock-*`).
    pub lock_mode: Option<String>,
    pub lock_until: Option<SystemTime>,
    /// IBM `Retention-Period` (seconds) and `Retention-Legal-Hold-ID`.
    pub cos_period: Option<i64>,
    pub cos_hold_id: Option<String>,
}

impl Worm {
    /// The IBM retention policy, if the bucket has one.
    pub fn cos_policy(&self) -> Option<super::cos_policy::CosPolicy> {
        match *self {
            Worm::CosRetention {
                minimum_days,
                default_days,
                maximum_days,
                permanent,
            } => Some(super::cos_policy::CosPolicy {
                minimum_days,
                default_days,
                maximum_days,
                permanent,
            }),
            _ => None,
        }
    }
}

impl From<super::cos_policy::CosPolicy> for Worm {
    fn from(p: super::cos_policy::CosPolicy) -> Self {
        Worm::CosRetention {
            minimum_days: p.minimum_days,
            default_days: p.default_days,
            maximum_days: p.maximum_days,
            permanent: p.permanent,
        }
    }
}

impl WormHeaders {
    /// Whether any header is to be sent.
    pub fn is_empty(&self) -> bool {
        self.lock_mode.is_none() && self.cos_period.is_none() && self.cos_hold_id.is_none()
    }
}

/// One IBM legal hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalHold {
    pub id: String,
    /// When it was applied, as the service wrote it.
    pub date: String,
}

/// Format a time as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let dt = aws_smithy_types::DateTime::from_secs(secs);
    dt.fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| secs.to_string())
}

/// Parse RFC 3339 / ISO 8601 (extended or basic) or RFC 1123 (HTTP date), as IBM's docs and
/// SDKs disagree on the form.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    use aws_smithy_types::date_time::Format;
    let s = s.trim();
    let try_fmt = |v: &str, f| {
        aws_smithy_types::DateTime::from_str(v, f)
            .ok()
            .and_then(|d| SystemTime::try_from(d).ok())
    };
    if let Some(t) = try_fmt(s, Format::DateTime).or_else(|| try_fmt(s, Format::HttpDate)) {
        return Some(t);
    }
    // Basic form: 20301128T031001Z.
    if s.len() == 16 && s.as_bytes()[8] == b'T' && s.ends_with('Z') {
        let ext = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[9..11],
            &s[11..13],
            &s[13..15]
        );
        return try_fmt(&ext, Format::DateTime);
    }
    None
}

/// Check an IBM legal hold ID: 1–64 characters of letters, digits and `! _ . * ( ) - '`.
pub fn check_hold_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > 64 {
        return Err(format!("legal hold ID {id:?} must be 1 to 64 characters long"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!_.*()-'".contains(*c)))
    {
        return Err(format!(
            "legal hold ID {id:?} contains {c:?}; allowed are letters, digits and ! _ . * ( ) - '"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_ids_and_protection() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_922_067_001);
        assert_eq!(rfc3339(t), "2030-11-28T03:30:01Z");
        assert_eq!(parse_time("2030-11-28T03:30:01Z"), Some(t));
        assert_eq!(parse_time("20301128T033001Z"), Some(t));
        assert_eq!(parse_time("Thu, 28 Nov 2030 03:30:01 GMT"), Some(t));
        assert_eq!(parse_time("tomorrow"), None);
        assert!(check_hold_id("case-2026_17(a)!").is_ok());
        assert!(check_hold_id("").is_err() && check_hold_id(&"x".repeat(65)).is_err() && check_hold_id("a b").is_err());
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let mut e = ObjectExtra::default();
        assert!(e.protected_because(now).is_none());
        e.cos.hold_count = Some(2);
        assert!(e.protected_because(now).unwrap_or_default().contains("2 legal hold"));
        let e = ObjectExtra {
            lock: LockState {
                retain_until: Some(t),
                mode: Some("GOVERNANCE".into()),
                legal_hold: None,
            },
            ..Default::default()
        };
        assert!(e.protected_because(now).unwrap_or_default().contains("2030-11-28"));
        assert!(e.protected_because(t + Duration::from_secs(1)).is_none());
    }
}
