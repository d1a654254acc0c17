//! Credentials the way IBM's COS SDKs find them, then the AWS way.
//!
//! Precedence (first match wins; the log says at INFO which one was used, never the secret):
//! 1. flags: `--api-key-file FILE` (an IBM API key), `--cos-credentials FILE` (a service credential);
//! 2. environment: `IBM_API_KEY_ID` (+ `IBM_SERVICE_INSTANCE_ID`, `IBM_AUTH_ENDPOINT`), then
//!    `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 3. the COS credentials file, `COS_CREDENTIALS_FILE` or `~/.bluemix/cos_credentials`: its HMAC
//!    keys (`cos_hmac_keys`) win over its API key (`apikey`);
//! 4. the AWS shared files for `--profile` / `AWS_PROFILE` / `default`: an `ibm_api_key_id` in the
//!    profile wins over its `aws_access_key_id`;
//! 5. the rest of aws-config's default chain (SSO, web identity, ECS, instance metadata).
//!
//! HMAC keys sign with SigV4. An API key becomes an IAM bearer token (`iam.rs`). Secrets are
//! [`Secret`]s: their `Debug` and `Display` print `***`. Reading the files is `files.rs`.

pub mod endpoints;
mod files;
pub mod iam;

use std::path::{Path, PathBuf};

pub use files::parse_cos_credentials;
use files::{parse_ini, read_secret_file, warn_if_open};

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: String) -> Self {
        Self(s)
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Failures to find or use credentials, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CredError {
    #[error("cannot read {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path} is not a valid COS service credential: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("IAM at {url} rejected the API key (HTTP {status}): {message}")]
    IamRejected { url: String, status: u16, message: String },
    #[error("cannot reach the IAM token endpoint {url}: {message}")]
    IamUnreachable { url: String, message: String },
}

/// What the command line says about credentials.
#[derive(Clone, Debug, Default)]
pub struct CredInputs {
    /// `--api-key-file`.
    pub api_key_file: Option<PathBuf>,
    /// `--cos-credentials`.
    pub cos_credentials: Option<PathBuf>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--iam-endpoint`.
    pub iam_endpoint: Option<String>,
    /// `--service-instance-id`.
    pub service_instance_id: Option<String>,
}

/// The credentials chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Access and secret key (SigV4).
    Hmac {
        access_key: String,
        secret_key: Secret,
        session_token: Option<Secret>,
        source: String,
    },
    /// An IBM API key, traded for bearer tokens.
    ApiKey {
        api_key: Secret,
        instance_id: Option<String>,
        iam_endpoint: String,
        source: String,
    },
    /// Let aws-config's chain decide (a profile with AWS keys, SSO, instance metadata...).
    AwsChain { profile: Option<String>, source: String },
}

impl Resolved {
    /// Where the credentials came from (safe to log).
    pub fn source(&self) -> &str {
        match self {
            Resolved::Hmac { source, .. } | Resolved::ApiKey { source, .. } | Resolved::AwsChain { source, .. } => {
                source
            }
        }
    }

    /// Whether they are IBM credentials (so the COS endpoint of the region is the default).
    pub fn is_ibm(&self) -> bool {
        match self {
            Resolved::ApiKey { .. } => true,
            Resolved::Hmac { source, .. } => source.contains("COS") || source.contains("cos_credentials"),
            Resolved::AwsChain { .. } => false,
        }
    }
}

/// The outcome of resolving: the credentials and warnings to log.
#[derive(Debug)]
pub struct Resolution {
    pub resolved: Resolved,
    pub warnings: Vec<String>,
    /// What was looked at, in order (for the "no credentials" message).
    pub looked_at: Vec<String>,
}

/// Choose credentials. `env` reads an environment variable, `home` is `$HOME`.
pub fn resolve(
    inputs: &CredInputs,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Resolution, CredError> {
    let mut warnings = Vec::new();
    let mut looked_at = Vec::new();
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let iam_default = inputs
        .iam_endpoint
        .clone()
        .or_else(|| get("IBM_AUTH_ENDPOINT"))
        .unwrap_or_else(|| iam::DEFAULT_IAM_ENDPOINT.to_string());
    let instance = inputs
        .service_instance_id
        .clone()
        .or_else(|| get("IBM_SERVICE_INSTANCE_ID"));
    let done = |resolved, warnings, looked_at| {
        Ok(Resolution {
            resolved,
            warnings,
            looked_at,
        })
    };

    // 1. Flags.
    looked_at.push("--api-key-file, --cos-credentials".to_string());
    if let Some(path) = &inputs.api_key_file {
        let key = read_secret_file(path, &mut warnings)?.trim().to_string();
        if key.is_empty() {
            return Err(CredError::Malformed {
                path: path.clone(),
                message: "the file is empty".into(),
            });
        }
        let resolved = Resolved::ApiKey {
            api_key: Secret::new(key),
            instance_id: instance,
            iam_endpoint: iam_default,
            source: format!("API key file {} (--api-key-file)", path.display()),
        };
        return done(resolved, warnings, looked_at);
    }
    if let Some(path) = &inputs.cos_credentials {
        let text = read_secret_file(path, &mut warnings)?;
        let resolved = parse_cos_credentials(path, &text, &iam_default, instance.as_deref())?;
        return done(resolved, warnings, looked_at);
    }
    // 2. Environment.
    looked_at.push("IBM_API_KEY_ID, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string());
    if let Some(key) = get("IBM_API_KEY_ID") {
        let resolved = Resolved::ApiKey {
            api_key: Secret::new(key),
            instance_id: instance,
            iam_endpoint: iam_default,
            source: "environment (IBM_API_KEY_ID)".into(),
        };
        return done(resolved, warnings, looked_at);
    }
    if let (Some(ak), Some(sk)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        let resolved = Resolved::Hmac {
            access_key: ak,
            secret_key: Secret::new(sk),
            session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            source: "environment (AWS_ACCESS_KEY_ID)".into(),
        };
        return done(resolved, warnings, looked_at);
    }
    // 3. The COS credentials file.
    let cos_file = get("COS_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".bluemix/cos_credentials")));
    if let Some(path) = cos_file {
        looked_at.push(path.display().to_string());
        if path.exists() {
            let text = read_secret_file(&path, &mut warnings)?;
            let resolved = parse_cos_credentials(&path, &text, &iam_default, instance.as_deref())?;
            return done(resolved, warnings, looked_at);
        }
    }
    // 4. The AWS shared files: an IBM API key in the profile wins.
    let profile = inputs
        .profile
        .clone()
        .or_else(|| get("AWS_PROFILE"))
        .unwrap_or_else(|| "default".into());
    let files = [
        get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws/credentials"))),
        get("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws/config"))),
    ];
    for path in files.into_iter().flatten() {
        looked_at.push(format!("profile {profile:?} in {}", path.display()));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ini = parse_ini(&text);
        let Some(section) = ini.get(&profile) else { continue };
        if let Some(key) = section.get("ibm_api_key_id").filter(|k| !k.is_empty()) {
            warn_if_open(&path, &mut warnings);
            let resolved = Resolved::ApiKey {
                api_key: Secret::new(key.clone()),
                instance_id: instance.or_else(|| section.get("ibm_service_instance_id").cloned()),
                iam_endpoint: section.get("ibm_auth_endpoint").cloned().unwrap_or(iam_default),
                source: format!("profile {profile:?} in {} (ibm_api_key_id)", path.display()),
            };
            return done(resolved, warnings, looked_at);
        }
        if section.contains_key("aws_access_key_id") {
            warn_if_open(&path, &mut warnings);
            let resolved = Resolved::AwsChain {
                profile: Some(profile.clone()),
                source: format!("profile {profile:?} in {}", path.display()),
            };
            return done(resolved, warnings, looked_at);
        }
    }
    // 5. The rest of the AWS chain.
    looked_at.push("the AWS default chain (SSO, web identity, ECS, EC2 instance metadata)".into());
    let resolved = Resolved::AwsChain {
        profile: inputs.profile.clone(),
        source: "the AWS default credential chain".into(),
    };
    done(resolved, warnings, looked_at)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    fn write(dir: &Path, rel: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    const BOTH: &str = r#"{"apikey":"file-api-key","cos_hmac_keys":{"access_key_id":"AK","secret_access_key":"file-secret-key-never-printed"},"resource_instance_id":"crn:x"}"#;
    const APIKEY_ONLY: &str =
        r#"{"apikey":"file-api-key","resource_instance_id":"crn:y","iam_auth_endpoint":"https://iam.example"}"#;

    fn kind(r: &Resolved) -> String {
        match r {
            Resolved::Hmac { access_key, .. } => format!("hmac:{access_key}"),
            Resolved::ApiKey {
                api_key,
                instance_id,
                iam_endpoint,
                ..
            } => {
                format!(
                    "apikey:{}:{}:{iam_endpoint}",
                    api_key.expose(),
                    instance_id.clone().unwrap_or_default()
                )
            }
            Resolved::AwsChain { profile, .. } => format!("chain:{}", profile.clone().unwrap_or_default()),
        }
    }

    #[test]
    fn precedence_matrix() {
        let home = tempfile::tempdir().expect("home");
        let h = home.path();
        write(h, ".bluemix/cos_credentials", BOTH, 0o600);
        write(h, ".aws/credentials", "[default]\naws_access_key_id = A\naws_secret_access_key = B\n[ibm]\nibm_api_key_id = profile-key\nibm_service_instance_id = crn:p\n", 0o600);
        let keyfile = write(h, "key.txt", "flag-key\n", 0o600);
        let none = CredInputs::default();
        let r = |inputs: &CredInputs, env: &[(&str, &str)]| {
            kind(&resolve(inputs, &env_of(env), Some(h)).expect("resolve").resolved)
        };

        // Flags beat everything.
        let flag = CredInputs {
            api_key_file: Some(keyfile),
            ..Default::default()
        };
        assert_eq!(
            r(&flag, &[("IBM_API_KEY_ID", "env-key")]),
            "apikey:flag-key::https://iam.cloud.ibm.com"
        );
        // IBM env beats AWS env beats the COS file.
        let env = [
            ("IBM_API_KEY_ID", "env-key"),
            ("IBM_SERVICE_INSTANCE_ID", "crn:e"),
            ("IBM_AUTH_ENDPOINT", "http://127.0.0.1:1"),
            ("AWS_ACCESS_KEY_ID", "EA"),
            ("AWS_SECRET_ACCESS_KEY", "ES"),
        ];
        assert_eq!(r(&none, &env), "apikey:env-key:crn:e:http://127.0.0.1:1");
        assert_eq!(r(&none, &env[3..]), "hmac:EA");
        // The COS file: HMAC wins over its API key; it beats ~/.aws.
        assert_eq!(r(&none, &[]), "hmac:AK");
        let alt = write(h, "alt.json", APIKEY_ONLY, 0o600);
        assert_eq!(
            r(&none, &[("COS_CREDENTIALS_FILE", alt.to_str().expect("utf8"))]),
            "apikey:file-api-key:crn:y:https://iam.example"
        );
        // Without a COS file: the profile's IBM key beats its AWS keys; AWS keys go to the chain.
        std::fs::remove_file(h.join(".bluemix/cos_credentials")).expect("rm");
        assert_eq!(r(&none, &[]), "chain:default");
        assert_eq!(
            r(
                &CredInputs {
                    profile: Some("ibm".into()),
                    ..Default::default()
                },
                &[]
            ),
            "apikey:profile-key:crn:p:https://iam.cloud.ibm.com"
        );
        assert_eq!(
            r(&none, &[("AWS_PROFILE", "ibm")]),
            "apikey:profile-key:crn:p:https://iam.cloud.ibm.com"
        );
        // Nothing at all: the AWS chain, with what was looked at listed.
        let empty = tempfile::tempdir().expect("empty");
        let res = resolve(&none, &env_of(&[]), Some(empty.path())).expect("resolve");
        assert_eq!(kind(&res.resolved), "chain:");
        assert!(res.looked_at.iter().any(|l| l.contains("cos_credentials")));
        assert!(res.looked_at.iter().any(|l| l.contains(".aws/credentials")));
    }

    #[test]
    fn bad_files_name_the_file_and_the_field_and_open_files_warn() {
        let home = tempfile::tempdir().expect("home");
        let h = home.path();
        let p = write(h, ".bluemix/cos_credentials", "{not json", 0o600);
        let err = resolve(&CredInputs::default(), &|_| None, Some(h))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(p.to_str().expect("utf8")) && err.contains("invalid JSON"),
            "{err}"
        );
        write(
            h,
            ".bluemix/cos_credentials",
            r#"{"cos_hmac_keys":{"access_key_id":"AK"}}"#,
            0o600,
        );
        let err = resolve(&CredInputs::default(), &|_| None, Some(h))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cos_hmac_keys.secret_access_key"), "{err}");
        write(h, ".bluemix/cos_credentials", BOTH, 0o644);
        let res = resolve(&CredInputs::default(), &|_| None, Some(h)).expect("resolve");
        assert!(res.warnings.iter().any(|w| w.contains("readable by group or others")));
        let missing = CredInputs {
            api_key_file: Some(h.join("nope")),
            ..Default::default()
        };
        let err = resolve(&missing, &|_| None, Some(h)).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        // Secrets never print.
        let res = resolve(&CredInputs::default(), &|_| None, Some(h)).expect("resolve");
        // (A distinctive secret: the Debug form holds the temporary home's path,
        // whose random letters may contain any short string.)
        let shown = format!("{:?}", res.resolved);
        assert!(!shown.contains("file-secret-key-never-printed"), "{shown}");
    }
}
