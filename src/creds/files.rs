//! Reading the files credentials come from: a secret file (checked for group or other access, which
//! is warned about), a COS service credential (JSON: HMAC keys win over the API key), and the AWS
//! shared files (INI sections, `[profile name]` or `[name]`). Which file is read when is
//! [`super::resolve`]'s business.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{CredError, Resolved, Secret};

pub(super) fn read_secret_file(path: &Path, warnings: &mut Vec<String>) -> Result<String, CredError> {
    let text = std::fs::read_to_string(path).map_err(|e| CredError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    warn_if_open(path, warnings);
    Ok(text)
}

pub(super) fn warn_if_open(path: &Path, warnings: &mut Vec<String>) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{} holds secrets but is readable by group or others (mode {:o}): chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
}

/// Parse a COS service credential (JSON). HMAC keys win over the API key.
pub fn parse_cos_credentials(
    path: &Path,
    text: &str,
    iam_default: &str,
    instance_override: Option<&str>,
) -> Result<Resolved, CredError> {
    let bad = |m: String| CredError::Malformed {
        path: path.to_path_buf(),
        message: m,
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON ({e})")))?;
    if !json.is_object() {
        return Err(bad("expected a JSON object".into()));
    }
    let source = format!("COS credentials file {}", path.display());
    if let Some(hmac) = json.get("cos_hmac_keys") {
        let field = |k: &str| {
            hmac.get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("field cos_hmac_keys.{k} is missing or not a string")))
        };
        return Ok(Resolved::Hmac {
            access_key: field("access_key_id")?,
            secret_key: Secret::new(field("secret_access_key")?),
            session_token: None,
            source: format!("{source} (HMAC keys)"),
        });
    }
    let api_key = json
        .get("apikey")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("it has neither cos_hmac_keys nor a string field apikey".into()))?;
    let iam = json
        .get("iam_auth_endpoint")
        .and_then(|v| v.as_str())
        .unwrap_or(iam_default);
    let instance = instance_override.map(str::to_string).or_else(|| {
        json.get("resource_instance_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    Ok(Resolved::ApiKey {
        api_key: Secret::new(api_key.to_string()),
        instance_id: instance,
        iam_endpoint: iam.to_string(),
        source: format!("{source} (API key)"),
    })
}

/// Sections of an INI file (`[name]` or `[profile name]` → key → value).
pub(super) fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            section = name.strip_prefix("profile ").unwrap_or(name).trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    out
}
