//! The IBM COS immutability operations that aws-sdk-s3 does not model (`?protection`,
//! `?legalHold`, `?extendRetention`, `Retention-*` headers), sent as customised SDK requests:
//! a GetObject whose method, URI, headers and body are rewritten before signing. They are
//! therefore signed (SigV4 or IAM bearer), timed out and retried like every other request, and
//! their raw answer is read as bytes.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use bytes::Bytes;
use md5::Digest;

use super::super::cos_policy::CosPolicy;
use super::super::worm::{parse_time, CosRetention, LegalHold, Worm};
use super::super::{xml_text, StoreError};
use super::S3Store;

/// Placeholder key of bucket-level requests, removed from the path before signing.
const PROBE_KEY: &str = "cosmount-bucket-level-request";

/// Captures IBM's `Retention-*` response headers (HeadObject's output drops unknown headers).
#[derive(Debug, Default, Clone)]
pub struct RetentionHeaders(pub Arc<Mutex<CosRetention>>);

impl Intercept for RetentionHeaders {
    fn name(&self) -> &'static str {
        "IbmRetentionHeaders"
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let h = ctx.response().headers();
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.period = h.get("retention-period").and_then(|v| v.trim().parse().ok());
        r.expiration = h.get("retention-expiration-date").and_then(parse_time);
        r.hold_count = h.get("retention-legal-hold-count").and_then(|v| v.trim().parse().ok());
        Ok(())
    }
}

fn b64_md5(body: &[u8]) -> String {
    aws_smithy_types::base64::encode(md5::Md5::digest(body))
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Store {
    /// Send `method` to `key` (or the bucket with `None`) with `query` (already encoded),
    /// extra headers and a body; returns the body of a 2xx answer.
    pub(crate) async fn raw(
        &self,
        op: &'static str,
        method: &'static str,
        key: Option<&str>,
        query: &str,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    ) -> Result<Bytes, StoreError> {
        let path_key = key.unwrap_or(PROBE_KEY).to_string();
        let query = query.to_string();
        let bucket_level = key.is_none();
        let result = self
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(&path_key)
            .customize()
            .mutate_request(move |req| {
                let uri = req.uri().to_string();
                let (path, _) = uri.split_once('?').unwrap_or((&uri, ""));
                let path = if bucket_level {
                    let p = path.strip_suffix(&format!("/{PROBE_KEY}")).unwrap_or(path);
                    if p.ends_with('/') || p.matches('/').count() > 3 {
                        p.to_string()
                    } else {
                        format!("{p}/")
                    }
                } else {
                    path.to_string()
                };
                let _ = req.set_uri(format!("{path}?{query}"));
                if let Ok(m) = http::Method::from_bytes(method.as_bytes()) {
                    let _ = req.set_method(m.as_str());
                }
                req.headers_mut().remove("range");
                for (k, v) in &headers {
                    req.headers_mut().insert(*k, v.clone());
                }
                if method != "GET" {
                    req.headers_mut().insert("content-md5", b64_md5(&body));
                    req.headers_mut().insert("content-length", body.len().to_string());
                    *req.body_mut() = aws_smithy_types::body::SdkBody::from(body.clone());
                }
            })
            .send()
            .await;
        match result {
            Ok(out) => out
                .body
                .collect()
                .await
                .map(|b| b.into_bytes())
                .map_err(|e| StoreError::Other {
                    op,
                    message: e.to_string(),
                }),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let message = crate::describe::error_chain(&e);
                Err(match status {
                    Some(400) => StoreError::InvalidRequest { op, message },
                    Some(409) => StoreError::Conflict { op, message },
                    Some(404) => StoreError::NotFound {
                        key: key.unwrap_or_default().to_string(),
                    },
                    _ => self.map_sdk_error(op, key.unwrap_or_default(), e),
                })
            }
        }
    }

    /// IBM `GET /{bucket}?protection`; anything but a `ProtectionConfiguration` means "none".
    pub(crate) async fn cos_protection(&self) -> Option<Worm> {
        let body = self
            .raw(
                "GetBucketProtectionConfiguration",
                "GET",
                None,
                "protection=",
                vec![],
                Bytes::new(),
            )
            .await
            .ok()?;
        let xml = String::from_utf8_lossy(&body);
        if !xml.contains("<ProtectionConfiguration") || xml_text(&xml, "Status") != Some("Retention") {
            return None;
        }
        let days = |tag: &str| {
            xml.find(&format!("<{tag}>"))
                .and_then(|i| xml_text(&xml[i..], "Days"))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
        };
        Some(Worm::CosRetention {
            minimum_days: days("MinimumRetention"),
            default_days: days("DefaultRetention"),
            maximum_days: days("MaximumRetention"),
            permanent: xml_text(&xml, "EnablePermanentRetention") == Some("true"),
        })
    }

    /// IBM `PUT /{bucket}?protection` with `policy` (with its Content-MD5, which IBM requires).
    pub(crate) async fn cos_put_protection(&self, policy: &CosPolicy) -> Result<(), StoreError> {
        self.raw(
            "PutBucketProtectionConfiguration",
            "PUT",
            None,
            "protection=",
            vec![("content-type", "application/xml".to_string())],
            Bytes::from(policy.to_xml()),
        )
        .await
        .map(|_| ())
    }

    /// IBM `GET ?legalHold`.
    pub(crate) async fn cos_list_holds(&self, key: &str) -> Result<Vec<LegalHold>, StoreError> {
        let body = self
            .raw("ListLegalHolds", "GET", Some(key), "legalHold=", vec![], Bytes::new())
            .await?;
        let xml = String::from_utf8_lossy(&body);
        let mut holds = Vec::new();
        let mut rest: &str = &xml;
        while let Some(i) = rest.find("<LegalHold>") {
            let after = &rest[i + "<LegalHold>".len()..];
            let end = after.find("</LegalHold>").unwrap_or(after.len());
            let one = &after[..end];
            if let Some(id) = xml_text(one, "ID") {
                holds.push(LegalHold {
                    id: id.to_string(),
                    date: xml_text(one, "Date").unwrap_or_default().to_string(),
                });
            }
            rest = &after[end..];
        }
        Ok(holds)
    }

    /// IBM `POST ?legalHold&add=ID` or `&remove=ID`.
    pub(crate) async fn cos_change_hold(&self, key: &str, id: &str, add: bool) -> Result<(), StoreError> {
        let (op, verb) = if add {
            ("AddLegalHold", "add")
        } else {
            ("DeleteLegalHold", "remove")
        };
        let body = if add {
            Bytes::copy_from_slice(id.as_bytes())
        } else {
            Bytes::new()
        };
        let query = format!("legalHold=&{verb}={}", query_escape(id));
        self.raw(
            op,
            "POST",
            Some(key),
            &query,
            vec![("content-type", "application/xml".into())],
            body,
        )
        .await?;
        Ok(())
    }

    /// IBM `POST ?extendRetention`.
    pub(crate) async fn cos_extend(
        &self,
        key: &str,
        period: Option<i64>,
        until: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let mut headers = vec![("content-type", "text/plain".to_string())];
        if let Some(p) = period {
            headers.push(("new-retention-period", p.to_string()));
        }
        if let Some(u) = until {
            headers.push(("new-retention-expiration-date", super::super::worm::rfc3339(u)));
        }
        self.raw(
            "ExtendObjectRetention",
            "POST",
            Some(key),
            "extendRetention=",
            headers,
            Bytes::new(),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_and_escapes() {
        let xml = "<RetentionState><LegalHoldSet><LegalHold><ID>a</ID><Date>d1</Date></LegalHold></LegalHoldSet></RetentionState>";
        assert_eq!(xml_text(xml, "ID"), Some("a"));
        assert_eq!(query_escape("Case(42)!"), "Case%2842%29%21");
        assert_eq!(b64_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }
}
