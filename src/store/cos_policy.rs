//! IBM COS bucket protection configurations (retention policies): the values, their XML, and
//! IBM's rules for changing them, checked before anything is sent so that a refused change gets a
//! precise message and errno instead of a bare 400 or 403.
//!
//! The rules (IBM's "Immutable Object Storage" and bucket API references; the repository's IBM
//! double enforces the same ones):
//! - every value is a number of days within 0..=[`MAX_DAYS`], and minimum ≤ default ≤ maximum;
//! - a policy, once set, is never removed or disabled;
//! - its minimum and maximum are never lowered (the default may move between them);
//! - permanent retention, once enabled, stays enabled.

use std::fmt;

/// The longest retention a policy may name, in days (1 000 years: IBM's bucket API reference;
/// its immutability guide says 36 135 days, and IBM's servers enforce their own limit anyway).
pub const MAX_DAYS: i64 = 365_243;

/// A bucket's retention policy, in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CosPolicy {
    pub minimum_days: i64,
    pub default_days: i64,
    pub maximum_days: i64,
    pub permanent: bool,
}

/// Why a policy change is refused: invalid values (`EINVAL`) or a change IBM never allows
/// (`EPERM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyRefusal {
    Invalid(String),
    NotAllowed(String),
}

impl PolicyRefusal {
    /// The errno the refusal is reported with.
    pub fn errno(&self) -> i32 {
        match self {
            PolicyRefusal::Invalid(_) => libc::EINVAL,
            PolicyRefusal::NotAllowed(_) => libc::EPERM,
        }
    }
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRefusal::Invalid(m) | PolicyRefusal::NotAllowed(m) => f.write_str(m),
        }
    }
}

impl CosPolicy {
    /// Whether IBM accepts `self` on a bucket whose policy is `current` (`None`: it has none).
    pub fn check_change_from(&self, current: Option<&CosPolicy>) -> Result<(), PolicyRefusal> {
        for (name, days) in [
            ("minimum", self.minimum_days),
            ("default", self.default_days),
            ("maximum", self.maximum_days),
        ] {
            if !(0..=MAX_DAYS).contains(&days) {
                return Err(PolicyRefusal::Invalid(format!(
                    "the {name} retention must be 0 to {MAX_DAYS} days, not {days}"
                )));
            }
        }
        if !(self.minimum_days <= self.default_days && self.default_days <= self.maximum_days) {
            return Err(PolicyRefusal::Invalid(format!(
                "retention must be minimum <= default <= maximum (here {} <= {} <= {})",
                self.minimum_days, self.default_days, self.maximum_days
            )));
        }
        let Some(cur) = current else { return Ok(()) };
        if self.minimum_days < cur.minimum_days {
            return Err(PolicyRefusal::NotAllowed(format!(
                "the minimum retention of a protected bucket is never lowered ({} days now, {} asked)",
                cur.minimum_days, self.minimum_days
            )));
        }
        if self.maximum_days < cur.maximum_days {
            return Err(PolicyRefusal::NotAllowed(format!(
                "the maximum retention of a protected bucket is never lowered ({} days now, {} asked)",
                cur.maximum_days, self.maximum_days
            )));
        }
        if cur.permanent && !self.permanent {
            return Err(PolicyRefusal::NotAllowed(
                "permanent retention, once enabled on a bucket, stays enabled".into(),
            ));
        }
        Ok(())
    }

    /// The `ProtectionConfiguration` document of `PUT /{bucket}?protection`. Permanent
    /// retention is sent only once enabled (IBM wants it repeated on every later change).
    pub fn to_xml(&self) -> String {
        let mut x = format!(
            "<ProtectionConfiguration><Status>Retention</Status>\
             <MinimumRetention><Days>{}</Days></MinimumRetention>\
             <DefaultRetention><Days>{}</Days></DefaultRetention>\
             <MaximumRetention><Days>{}</Days></MaximumRetention>",
            self.minimum_days, self.default_days, self.maximum_days
        );
        if self.permanent {
            x.push_str("<EnablePermanentRetention>true</EnablePermanentRetention>");
        }
        x.push_str("</ProtectionConfiguration>");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(minimum_days: i64, default_days: i64, maximum_days: i64, permanent: bool) -> CosPolicy {
        CosPolicy {
            minimum_days,
            default_days,
            maximum_days,
            permanent,
        }
    }

    #[test]
    fn new_policies_need_ordered_values_in_range() {
        assert_eq!(p(0, 0, MAX_DAYS, false).check_change_from(None), Ok(()));
        assert_eq!(p(30, 365, 3650, true).check_change_from(None), Ok(()));
        for bad in [
            p(0, 0, MAX_DAYS + 1, false),
            p(-1, 0, 1, false),
            p(5, 1, 9, false),
            p(1, 10, 9, false),
        ] {
            let err = bad.check_change_from(None).unwrap_err();
            assert_eq!(err.errno(), libc::EINVAL, "{bad:?}: {err}");
        }
        assert!(p(5, 1, 9, false)
            .check_change_from(None)
            .unwrap_err()
            .to_string()
            .contains("5 <= 1 <= 9"));
    }

    #[test]
    fn changes_never_lower_the_bounds_or_drop_permanence() {
        let cur = p(10, 20, 30, false);
        assert_eq!(p(12, 15, 40, false).check_change_from(Some(&cur)), Ok(()));
        assert_eq!(p(10, 30, 30, true).check_change_from(Some(&cur)), Ok(()));
        for (bad, word) in [(p(9, 20, 30, false), "minimum"), (p(10, 20, 29, false), "maximum")] {
            let err = bad.check_change_from(Some(&cur)).unwrap_err();
            assert_eq!(err.errno(), libc::EPERM);
            assert!(err.to_string().contains(word), "{err}");
        }
        let permanent = p(10, 20, 30, true);
        let err = cur.check_change_from(Some(&permanent)).unwrap_err();
        assert_eq!(err.errno(), libc::EPERM);
        assert!(err.to_string().contains("permanent"), "{err}");
    }

    #[test]
    fn xml_names_every_value_and_permanence_only_when_on() {
        let x = p(1, 2, 3, false).to_xml();
        assert!(x.contains("<Status>Retention</Status>"));
        assert!(x.contains("<MinimumRetention><Days>1</Days></MinimumRetention>"));
        assert!(x.contains("<DefaultRetention><Days>2</Days></DefaultRetention>"));
        assert!(x.contains("<MaximumRetention><Days>3</Days></MaximumRetention>"));
        assert!(!x.contains("Permanent"));
        assert!(p(1, 2, 3, true)
            .to_xml()
            .contains("<EnablePermanentRetention>true</EnablePermanentRetention>"));
    }
}
