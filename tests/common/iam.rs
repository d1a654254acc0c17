//! Doubles for IBM IAM authentication: a token endpoint that issues short-lived bearer tokens
//! (and refuses a chosen key with IAM's error format), and an HTTP proxy in front of the local
//! S3 server that lets through only requests carrying a valid, unexpired token.

use std::collections::HashMap;
use std::io::{BufReader, Write};

use super::http::read_request;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The IAM token endpoint double.
pub struct IamDouble {
    pub endpoint: String,
    pub calls: Arc<AtomicUsize>,
    pub tokens: Arc<Mutex<HashMap<String, Instant>>>,
}

/// A key the double refuses.
pub const BAD_KEY: &str = "bad-api-key-7f3c9e";
/// IAM's message for it.
pub const BAD_KEY_MESSAGE: &str = "Provided API key could not be found.";

impl IamDouble {
    /// Start a token endpoint issuing tokens valid for `ttl`.
    pub fn start(ttl: Duration) -> IamDouble {
        Self::start_with(ttl, ttl)
    }

    /// Tokens said to last `advertised` but refused by the proxy after `real` (revoked early).
    pub fn start_with(advertised: Duration, real: Duration) -> IamDouble {
        let ttl = real;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let calls = Arc::new(AtomicUsize::new(0));
        let tokens: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
        let (c, t) = (calls.clone(), tokens.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (c, t) = (c.clone(), t.clone());
                std::thread::spawn(move || {
                    let mut w = stream.try_clone().expect("clone");
                    let mut r = BufReader::new(stream);
                    while let Some((line, _, body)) = read_request(&mut r) {
                        let body = String::from_utf8_lossy(&body).into_owned();
                        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                        let form: HashMap<&str, &str> = body.split('&').filter_map(|kv| kv.split_once('=')).collect();
                        let (status, json) = if !line.starts_with("POST /identity/token") {
                            ("404 Not Found", "{\"errorMessage\":\"not found\"}".to_string())
                        } else if form.get("grant_type") != Some(&"urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey") {
                            (
                                "400 Bad Request",
                                "{\"errorCode\":\"BXNIM0109E\",\"errorMessage\":\"Property missing or empty.\"}"
                                    .to_string(),
                            )
                        } else if form.get("apikey") == Some(&BAD_KEY) {
                            (
                                "400 Bad Request",
                                format!("{{\"errorCode\":\"BXNIM0415E\",\"errorMessage\":\"{BAD_KEY_MESSAGE}\"}}"),
                            )
                        } else {
                            let token = format!("tok{n}x{:08x}", (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32);
                            t.lock().expect("tokens").insert(token.clone(), Instant::now() + ttl);
                            let json = format!(
                                "{{\"access_token\":\"{token}\",\"refresh_token\":\"not_supported\",\"token_type\":\"Bearer\",\"expires_in\":{},\"expiration\":0,\"scope\":\"ibm openid\"}}",
                                advertised.as_secs()
                            );
                            ("200 OK", json)
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                            json.len()
                        );
                        if w.write_all(resp.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        IamDouble {
            endpoint,
            calls,
            tokens,
        }
    }
}

/// A proxy to the S3 server that checks every request's bearer token.
pub struct AuthProxy {
    pub endpoint: String,
    pub accepted: Arc<AtomicUsize>,
    pub rejected: Arc<AtomicUsize>,
}

impl AuthProxy {
    /// Forward to `upstream`, accepting only tokens issued by `iam` and not expired.
    pub fn start(upstream: &str, iam: &IamDouble) -> AuthProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let rejected = Arc::new(AtomicUsize::new(0));
        let (a, rj, tokens) = (accepted.clone(), rejected.clone(), iam.tokens.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (a, rj, tokens) = (a.clone(), rj.clone(), tokens.clone());
                let mut back_from = server.try_clone().expect("clone");
                let mut back_to = client.try_clone().expect("clone");
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut back_from, &mut back_to);
                });
                std::thread::spawn(move || {
                    let mut to_server = server;
                    let mut to_client = client.try_clone().expect("clone");
                    let mut r = BufReader::new(client);
                    while let Some((line, headers, body)) = read_request(&mut r) {
                        let auth = headers
                            .iter()
                            .find(|(k, _)| k == "authorization")
                            .map(|(_, v)| v.clone());
                        let valid = auth
                            .as_deref()
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .and_then(|t| tokens.lock().expect("tokens").get(t).copied())
                            .is_some_and(|exp| exp > Instant::now());
                        if !valid {
                            rj.fetch_add(1, Ordering::SeqCst);
                            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied: the bearer token is missing, unknown or expired</Message></Error>";
                            let resp = format!(
                                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                                xml.len()
                            );
                            if to_client.write_all(resp.as_bytes()).is_err() {
                                break;
                            }
                            continue;
                        }
                        // IBM wants the service instance on requests that list or create buckets.
                        let mut parts = line.split(' ');
                        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                        let path = target.split('?').next().unwrap_or("");
                        let bucket_level = path.trim_matches('/').split('/').count() == 1 && !target.contains('?');
                        let needs_instance = path == "/" || (method == "PUT" && bucket_level);
                        if needs_instance && !headers.iter().any(|(k, _)| k == "ibm-service-instance-id") {
                            rj.fetch_add(1, Ordering::SeqCst);
                            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidArgument</Code><Message>ibm-service-instance-id is required to list or create buckets</Message></Error>";
                            let resp = format!(
                                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                                xml.len()
                            );
                            if to_client.write_all(resp.as_bytes()).is_err() {
                                break;
                            }
                            continue;
                        }
                        a.fetch_add(1, Ordering::SeqCst);
                        let mut head = format!("{line}\r\n");
                        for (k, v) in &headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        if to_server.write_all(head.as_bytes()).is_err() || to_server.write_all(&body).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        AuthProxy {
            endpoint,
            accepted,
            rejected,
        }
    }
}
