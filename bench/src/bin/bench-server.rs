//! bench-server: a directory served as S3 on 127.0.0.1, for benchmarks.
//!
//! s3s-fs (the library) behind s3s's `S3Service`, served by hyper, with two changes to how
//! s3s-fs's own binary behaves, both so that the server measures clients rather than its quirks:
//!
//! 1. `TCP_NODELAY` on every accepted socket: with Nagle's algorithm on, a small response waits for
//!    the client's delayed ACK (~40 ms), which would swamp every small-file and metadata figure.
//! 2. Keys that name a *directory* of the store (s3s-fs keeps `a/b` as the file `ROOT/BUCKET/a/b`, so
//!    the prefix `a` is a directory on disk) answer HEAD/GET the way S3 does. s3s-fs 0.14.1 answers
//!    them with 500 InternalError (it tries to hash the directory as a file), which every client
//!    retries with backoff: s3fs stalls for minutes on its first `HEAD a`, and cosmount's lookups pay
//!    the SDK's retries. Here:
//!    - `HEAD/GET a` where `ROOT/BUCKET/a` is a directory: 404 NoSuchKey (no such object);
//!    - `HEAD/GET a/`: 200 with an empty body if a client created the marker object `a/` through
//!      this server (s3s-fs stores it as a bare directory and forgets its headers; we remember its
//!      `Content-Type` and `x-amz-meta-*` in memory), else 404 NoSuchKey;
//!    - CopyObject onto a marker `a/` from a marker (what a client does to store a directory's new
//!      mode or mtime, e.g. `rsync -a` setting directory times): s3s-fs answers 500 (it opens the
//!      source directory as a file); here the destination directory is created and the marker's
//!      remembered headers are replaced (`x-amz-metadata-directive: REPLACE`) or copied.
//!
//! `--port 0` picks a free port; `--port-file F` writes the bound port to F (via a temporary name
//! and a rename, so a reader never sees a partial file) once the server is listening.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use clap::Parser;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::Body;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "bench-server",
    about = "Serve a directory as S3 (s3s-fs) with TCP_NODELAY on"
)]
struct Opt {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0: any free port; see --port-file).
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Write the bound port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,

    /// Access key clients must sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,

    /// Secret key clients must sign with.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,

    /// Root directory of the stored data (each subdirectory is a bucket).
    root: PathBuf,
}

/// Headers of a directory marker object (`a/`), by "bucket/key".
type Markers = Mutex<HashMap<String, Vec<(HeaderName, HeaderValue)>>>;

struct Server {
    s3: S3Service,
    root: PathBuf,
    markers: Markers,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let opt = Opt::parse();

    let fs = s3s_fs::FileSystem::new(&opt.root).map_err(|e| format!("{}: {e:?}", opt.root.display()))?;
    let s3 = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(opt.access_key, opt.secret_key));
        b.build()
    };
    let server = Arc::new(Server {
        s3,
        root: opt.root.clone(),
        markers: Mutex::default(),
    });

    let listener = TcpListener::bind((opt.host.as_str(), opt.port)).await?;
    let addr = listener.local_addr()?;
    if let Some(path) = &opt.port_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", addr.port()))?;
        std::fs::rename(&tmp, path)?;
    }
    eprintln!("bench-server: serving {} at http://{addr}", opt.root.display());

    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("bench-server: accept failed: {e}");
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            eprintln!("bench-server: cannot set TCP_NODELAY: {e}");
        }
        let server = Arc::clone(&server);
        let service = hyper::service::service_fn(move |req| {
            let server = Arc::clone(&server);
            async move { server.handle(req).await }
        });
        let conn = http.serve_connection(TokioIo::new(socket), service).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

impl Server {
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, s3s::HttpError> {
        let Some((bucket, key)) = object_of(&req) else {
            return hyper::service::Service::call(&self.s3, req).await;
        };
        let method = req.method().clone();
        let is_read = method == Method::HEAD || method == Method::GET;
        if is_read && !is_subresource(req.uri().query()) {
            let path = self.root.join(&bucket).join(&key);
            if is_plain_path(&key) && path.is_dir() {
                let name = format!("{bucket}/{key}");
                let marker = if key.ends_with('/') {
                    self.lookup_marker(&name)
                } else {
                    None
                };
                return Ok(match marker {
                    Some(headers) => marker_response(&path, headers),
                    None => no_such_key(method == Method::HEAD),
                });
            }
            return hyper::service::Service::call(&self.s3, req).await;
        }
        if key.ends_with('/') && method == Method::PUT && req.headers().contains_key("x-amz-copy-source") {
            if let Some(resp) = self.copy_marker(&bucket, &key, req.headers()) {
                return Ok(resp);
            }
        }
        if key.ends_with('/') && (method == Method::PUT || method == Method::DELETE) {
            let name = format!("{bucket}/{key}");
            let kept = marker_headers(req.headers());
            let resp = hyper::service::Service::call(&self.s3, req).await?;
            if resp.status().is_success() {
                let mut markers = self.markers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if method == Method::PUT {
                    markers.insert(name, kept);
                } else {
                    markers.remove(&name);
                }
            }
            return Ok(resp);
        }
        hyper::service::Service::call(&self.s3, req).await
    }

    /// CopyObject onto the marker `bucket/key` (key ends with `/`) from a marker; None (let s3s-fs
    /// answer) if the source is not a marker of this store.
    fn copy_marker(&self, bucket: &str, key: &str, h: &HeaderMap) -> Option<Response<Body>> {
        let src = h.get("x-amz-copy-source")?.to_str().ok()?;
        let src = src.split('?').next()?;
        let src = percent_decode(src.strip_prefix('/').unwrap_or(src))?;
        let (sb, sk) = src.split_once('/')?;
        if !sk.ends_with('/') || !is_plain_path(sk) || !is_plain_path(key) {
            return None;
        }
        let src_dir = self.root.join(sb).join(sk);
        if !src_dir.is_dir() {
            return Some(no_such_key(false));
        }
        let dst_dir = self.root.join(bucket).join(key);
        if std::fs::create_dir_all(&dst_dir).is_err() {
            return None;
        }
        let replace = h
            .get("x-amz-metadata-directive")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("REPLACE"));
        let headers = if replace {
            marker_headers(h)
        } else {
            self.lookup_marker(&src).unwrap_or_default()
        };
        let mut markers = self.markers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        markers.insert(format!("{bucket}/{key}"), headers);
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><LastModified>{}</LastModified>\
             <ETag>\"d41d8cd98f00b204e9800998ecf8427e\"</ETag></CopyObjectResult>",
            iso_date(SystemTime::now())
        );
        Some(
            Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(Body::from(xml))
                .expect("valid response"),
        )
    }

    fn lookup_marker(&self, name: &str) -> Option<Vec<(HeaderName, HeaderValue)>> {
        let markers = self.markers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        markers.get(name).cloned()
    }
}

/// Path-style `/bucket/key` with a non-empty key: (bucket, percent-decoded key).
fn object_of<B>(req: &Request<B>) -> Option<(String, String)> {
    let path = req.uri().path().strip_prefix('/')?;
    let (bucket, key) = path.split_once('/')?;
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some((percent_decode(bucket)?, percent_decode(key)?))
}

/// A key we may look up on disk ourselves: relative, no `.`/`..` segments, no NUL.
fn is_plain_path(key: &str) -> bool {
    !key.starts_with('/') && !key.contains('\0') && key.split('/').all(|s| s != "." && s != "..")
}

/// Query parameters that make a GET/HEAD on an object something other than GetObject/HeadObject.
fn is_subresource(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    q.split('&').any(|kv| {
        let k = kv.split('=').next().unwrap_or("");
        matches!(
            k,
            "uploadId" | "uploads" | "tagging" | "acl" | "attributes" | "legal-hold" | "retention" | "torrent"
        )
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The headers of a marker PUT worth returning on HEAD/GET.
fn marker_headers(h: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    h.iter()
        .filter(|(k, _)| k.as_str().starts_with("x-amz-meta-") || *k == http::header::CONTENT_TYPE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn marker_response(dir: &Path, headers: Vec<(HeaderName, HeaderValue)>) -> Response<Body> {
    let mtime = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_LENGTH, "0")
        .header(http::header::ETAG, "\"d41d8cd98f00b204e9800998ecf8427e\"")
        .header(http::header::LAST_MODIFIED, http_date(mtime));
    let has_type = headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE);
    if !has_type {
        b = b.header(http::header::CONTENT_TYPE, "binary/octet-stream");
    }
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Body::empty()).expect("valid response")
}

fn no_such_key(head: bool) -> Response<Body> {
    let b = Response::builder().status(StatusCode::NOT_FOUND);
    if head {
        return b.body(Body::empty()).expect("valid response");
    }
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
               <Message>The specified key does not exist.</Message></Error>";
    b.header(http::header::CONTENT_TYPE, "application/xml")
        .body(Body::from(xml.to_string()))
        .expect("valid response")
}

/// ISO 8601 UTC, e.g. `2026-11-24T18:49:00.000Z`.
fn iso_date(t: SystemTime) -> String {
    let (_, year, month, day, secs) = civil(t);
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 7231 IMF-fixdate, e.g. `Tue, 24 Nov 2026 18:49:00 GMT`.
fn http_date(t: SystemTime) -> String {
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, year, month, day, rem) = civil(t);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        MON[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (days since 1970-01-01, year, month, day, seconds into the day) of a UTC time.
fn civil(t: SystemTime) -> (i64, i64, i64, i64, u64) {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (days, year, month, day, rem)
}
