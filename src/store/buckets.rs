//! Buckets as things: what one bucket is (its location, IBM storage class and Key Protect
//! encryption, shown as read-only xattrs on its root) and the account operations of an
//! `--all-buckets` mount (list, create, delete), with the rules a new bucket's name must follow.
//!
//! The S3 requests are `s3/buckets.rs`; the account namespace built on them is `account/`.

use std::time::SystemTime;

use super::xml_text;

/// IBM COS storage classes, the last part of a location constraint such as `us-south-cold`.
pub const IBM_CLASSES: [&str; 6] = ["standard", "vault", "cold", "smart", "flex", "onerate_active"];

/// One bucket of the account listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketInfo {
    /// The bucket's name.
    pub name: String,
    /// CreationDate.
    pub created: Option<SystemTime>,
    /// IBM's extended listing: the bucket's location constraint (`us-south-standard`).
    pub location: Option<String>,
}

/// How `mkdir` at the top of an account mount creates a bucket (mount options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewBucket {
    /// `LocationConstraint` of CreateBucket (IBM: location and storage class, `us-south-cold`);
    /// `None`: the endpoint's default.
    pub location_constraint: Option<String>,
    /// IBM Key Protect root key (`ibm-sse-kp-customer-root-key-crn`).
    pub kp_root_key_crn: Option<String>,
    /// IBM Key Protect algorithm (`ibm-sse-kp-encryption-algorithm`), sent with the key.
    pub kp_algorithm: String,
}

/// What HEAD and `GET ?location` say of a bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketFacts {
    /// The location constraint (IBM: `us-south-standard`; AWS: the region).
    pub location: Option<String>,
    /// IBM `ibm-sse-kp-enabled` (`None`: the server does not say, as any non-IBM server).
    pub kp_enabled: Option<bool>,
    /// IBM `ibm-sse-kp-crk-id`: the Key Protect root key's CRN.
    pub kp_root_key_crn: Option<String>,
    /// IBM `ibm-sse-kp-encryption-algorithm`, where the server reports it.
    pub kp_algorithm: Option<String>,
}

impl BucketFacts {
    /// The IBM storage class named by the location constraint (`cold` of `us-south-cold`).
    pub fn storage_class(&self) -> Option<&str> {
        storage_class_of(self.location.as_deref()?)
    }
}

/// The IBM storage class at the end of a location constraint, if it names one.
pub fn storage_class_of(constraint: &str) -> Option<&str> {
    IBM_CLASSES
        .into_iter()
        .find(|c| constraint.len() > c.len() + 1 && constraint.ends_with(&format!("-{c}")))
}

/// Check a bucket name against the S3 and IBM COS rules, with a message saying which rule failed.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid bucket name {name:?}: {why}"));
    if name.len() < 3 || name.len() > 63 {
        return bad("bucket names are 3 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return bad("only lower-case letters, digits, '-' and '.' are allowed");
    }
    let first_last_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_last_ok(name.chars().next()) || !first_last_ok(name.chars().last()) {
        return bad("it must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("a '.' may not be next to another '.' or a '-'");
    }
    if name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("it must not look like an IP address");
    }
    Ok(())
}

/// Check a `--location-constraint` value: lower-case letters, digits, `-` and `_`.
pub fn check_location_constraint(lc: &str) -> Result<(), String> {
    if lc.is_empty()
        || lc.len() > 64
        || !lc
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "--location-constraint {lc:?} is not a location constraint (such as us-south-standard or us-south-cold)"
        ));
    }
    Ok(())
}

/// Check a Key Protect root key CRN (`crn:v1:…:kms:…:key:ID`, or Hyper Protect Crypto Services).
pub fn check_root_key_crn(crn: &str) -> Result<(), String> {
    if !crn.starts_with("crn:v1:") || !(crn.contains(":kms:") || crn.contains(":hs-crypto:")) || !crn.contains(":key:")
    {
        return Err(format!(
            "--kp-root-key-crn {crn:?} is not a Key Protect root key CRN (crn:v1:bluemix:public:kms:REGION:a/ACCOUNT:INSTANCE:key:KEY)"
        ));
    }
    Ok(())
}

/// The buckets of a ListBuckets answer (IBM's extended listing adds `LocationConstraint`), and
/// whether it is truncated. Text is unescaped for the five XML entities.
pub fn parse_bucket_list(xml: &str) -> (Vec<BucketInfo>, bool) {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Bucket>") {
        let after = &rest[i + "<Bucket>".len()..];
        let end = after.find("</Bucket>").unwrap_or(after.len());
        let one = &after[..end];
        if let Some(name) = xml_text(one, "Name") {
            out.push(BucketInfo {
                name: unescape(name),
                created: xml_text(one, "CreationDate").and_then(crate::store::worm::parse_time),
                location: xml_text(one, "LocationConstraint")
                    .map(unescape)
                    .filter(|l| !l.is_empty()),
            });
        }
        rest = &after[end..];
    }
    let truncated = xml_text(xml, "IsTruncated") == Some("true");
    (out, truncated)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_rules() {
        for good in ["abc", "my-bucket.2026", "a1b", "x".repeat(63).as_str()] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for (bad, rule) in [
            ("ab", "3 to 63"),
            ("Upper", "lower-case"),
            ("-abc", "begin and end"),
            ("abc-", "begin and end"),
            ("a..b", "next to"),
            ("a.-b", "next to"),
            ("192.168.1.10", "IP address"),
            ("under_score", "lower-case"),
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }

    #[test]
    fn storage_class_is_the_end_of_the_constraint() {
        assert_eq!(storage_class_of("us-south-cold"), Some("cold"));
        assert_eq!(storage_class_of("eu-de-onerate_active"), Some("onerate_active"));
        assert_eq!(storage_class_of("us-east-1"), None);
        assert_eq!(storage_class_of("cold"), None);
        let facts = BucketFacts {
            location: Some("jp-tok-smart".into()),
            ..Default::default()
        };
        assert_eq!(facts.storage_class(), Some("smart"));
    }

    #[test]
    fn crns_and_constraints_are_checked() {
        assert!(check_root_key_crn("crn:v1:bluemix:public:kms:us-south:a/acc:inst:key:k1").is_ok());
        assert!(check_root_key_crn("crn:v1:bluemix:public:hs-crypto:us-south:a/acc:inst:key:k1").is_ok());
        assert!(check_root_key_crn("arn:aws:kms:key").is_err());
        assert!(check_root_key_crn("crn:v1:bluemix:public:kms:us-south:a/acc:inst").is_err());
        assert!(check_location_constraint("us-south-cold").is_ok());
        assert!(check_location_constraint("Us South").is_err());
        assert!(check_location_constraint("").is_err());
    }

    #[test]
    fn bucket_lists_are_read_with_ibm_locations() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>x</ID></Owner><IsTruncated>true</IsTruncated><Buckets>
<Bucket><Name>alpha</Name><CreationDate>2026-12-01T10:00:00.000Z</CreationDate><LocationConstraint>us-south-cold</LocationConstraint></Bucket>
<Bucket><Name>b&amp;c</Name><CreationDate>2026-12-02T10:00:00Z</CreationDate></Bucket>
</Buckets></ListAllMyBucketsResult>"#;
        let (list, truncated) = parse_bucket_list(xml);
        assert!(truncated);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "alpha");
        assert_eq!(list[0].location.as_deref(), Some("us-south-cold"));
        assert!(list[0].created.is_some());
        assert_eq!(list[1].name, "b&c");
        assert_eq!(list[1].location, None);
        assert_eq!(parse_bucket_list("<ListAllMyBucketsResult/>"), (vec![], false));
    }
}
