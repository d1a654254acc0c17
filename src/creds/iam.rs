//! IBM IAM: trading an API key for a bearer token, and keeping a fresh one.
//!
//! - The token comes from `POST {iam}/identity/token` with the API-key grant; IAM's own error
//!   text is shown when it refuses the key.
//! - One token is shared by all requests. A background task refreshes it when about a quarter of
//!   its lifetime is left; requests never wait for it unless the token has actually expired, and
//!   then they share one refresh (single flight).
//! - A 401/403 from COS on a token that should still be good forces one refresh and one retry
//!   (see `store/s3/objects.rs`).
//! - Neither the API key nor any token is ever logged or put in an error message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tracing::{debug, info, warn};

use super::{CredError, Secret};

/// IBM's public IAM endpoint.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.cloud.ibm.com";

#[derive(Clone)]
struct Token {
    value: Secret,
    issued: Instant,
    expires: Instant,
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// Holds and refreshes the bearer token of one API key.
pub struct TokenManager {
    url: String,
    api_key: Secret,
    http: Client<Https, Full<Bytes>>,
    token: RwLock<Option<Token>>,
    refreshing: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager for `api_key` at IAM endpoint `endpoint` (`https://iam.cloud.ibm.com` or an override).
    pub fn new(endpoint: &str, api_key: Secret) -> Result<Self, CredError> {
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/identity/token") {
            base.to_string()
        } else {
            format!("{base}/identity/token")
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| CredError::IamUnreachable {
                url: url.clone(),
                message: format!("no TLS root certificates: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            api_key,
            http: Client::builder(TokioExecutor::new()).build(https),
            token: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refreshes: AtomicU64::new(0),
        })
    }

    /// The token endpoint URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many tokens have been fetched.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The current token if it has not expired (for the request interceptor; never blocks).
    pub fn current(&self) -> Option<String> {
        let guard = self.token.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.value.expose().to_string())
    }

    /// Make sure a valid token is held: waits only if there is none or it has expired.
    pub async fn ensure(&self) -> Result<(), CredError> {
        if self.current().is_some() {
            return Ok(());
        }
        self.refresh_if_stale(None).await
    }

    /// Fetch a new token now, unless another caller just did (`seen`: the token that failed).
    pub async fn force_refresh(&self, seen: Option<&str>) -> Result<(), CredError> {
        self.refresh_if_stale(Some(seen.unwrap_or_default().to_string())).await
    }

    async fn refresh_if_stale(&self, failed: Option<String>) -> Result<(), CredError> {
        let _one = self.refreshing.lock().await;
        // Someone else may have refreshed while we waited.
        match (&failed, self.current()) {
            (None, Some(_)) => return Ok(()),
            (Some(bad), Some(now)) if *bad != now && !bad.is_empty() => return Ok(()),
            _ => {}
        }
        let token = self.fetch().await?;
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token);
        Ok(())
    }

    async fn fetch(&self) -> Result<Token, CredError> {
        let body = format!(
            "grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={}",
            form_encode(self.api_key.expose())
        );
        let req = http::Request::post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CredError::IamUnreachable {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let started = Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(15), self.http.request(req))
            .await
            .map_err(|_| CredError::IamUnreachable {
                url: self.url.clone(),
                message: "no answer within 15 s".into(),
            })?
            .map_err(|e| CredError::IamUnreachable {
                url: self.url.clone(),
                message: crate::describe::error_chain(&e),
            })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CredError::IamUnreachable {
                url: self.url.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let text = ["errorMessage", "errorCode", "message"]
                .iter()
                .find_map(|k| json.get(k).and_then(|v| v.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            let code = json.get("errorCode").and_then(|v| v.as_str()).unwrap_or_default();
            return Err(CredError::IamRejected {
                url: self.url.clone(),
                status: status.as_u16(),
                message: format!("{text} {code}").trim().to_string(),
            });
        }
        let value = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| CredError::IamRejected {
                url: self.url.clone(),
                status: status.as_u16(),
                message: "the answer has no access_token".into(),
            })?;
        let lifetime = json.get("expires_in").and_then(|v| v.as_u64()).unwrap_or(3600).max(1);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        let issued = Instant::now();
        debug!(
            lifetime_s = lifetime,
            took_ms = started.elapsed().as_millis() as u64,
            "got an IAM token"
        );
        Ok(Token {
            value: Secret::new(value.to_string()),
            issued,
            expires: issued + Duration::from_secs(lifetime),
        })
    }

    /// Refresh in the background whenever about a quarter of the token's lifetime is left.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wait = {
                    let guard = me.token.read().unwrap_or_else(|p| p.into_inner());
                    match guard.as_ref() {
                        Some(t) => {
                            let life = t.expires.saturating_duration_since(t.issued);
                            (t.issued + life.mul_f64(0.75)).saturating_duration_since(Instant::now())
                        }
                        None => Duration::ZERO,
                    }
                };
                tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
                let stale = {
                    let guard = me.token.read().unwrap_or_else(|p| p.into_inner());
                    guard.as_ref().map(|t| t.value.expose().to_string())
                };
                let result = {
                    let _one = me.refreshing.lock().await;
                    me.fetch().await
                };
                match result {
                    Ok(token) => {
                        let mut guard = me.token.write().unwrap_or_else(|p| p.into_inner());
                        if guard.as_ref().map(|t| t.value.expose().to_string()) == stale {
                            *guard = Some(token);
                        }
                        info!("refreshed the IAM token");
                    }
                    Err(e) => {
                        warn!("refreshing the IAM token failed, retrying in 5 s: {e}");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
