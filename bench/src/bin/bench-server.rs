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
//! 3. Listings are computed once, not once per page: s3s-fs builds every ListObjects(V2) page by
//!    walking the whole bucket (or the whole prefix directory) and sorting it, then cuts out one page
//!    after the continuation token — so listing N keys costs O(N²/1 000) and a 100 000-entry
//!    directory takes minutes, which would make every listing figure the server's. Here each
//!    (bucket, prefix, delimiter) answer is computed once — by one s3s-fs walk of the whole
//!    answer, or, once the bucket's whole listing (no prefix, no delimiter) is known, derived from
//!    that in memory, grouped as S3 groups keys — kept, and paged the way s3s-fs pages (after
//!    max(continuation token, start-after), objects and common prefixes merged in key order). A
//!    request other than GET/HEAD to a bucket (a write of any kind) discards that bucket's
//!    answers, so a LIST after a write costs one s3s-fs walk (not one per page);
//!    scripts/bench.sh lists each listing data set's whole bucket once, untimed, before measuring. Marker objects
//!    `a/` made through this server are listed as S3 lists them (s3s-fs lists none: a directory
//!    whose only object is its marker would look absent to a client that finds directories by
//!    listing `a/`); directories that hold no object are not listed, as in S3.
//! 4. Listed objects carry their ETag, as S3 lists them: s3s-fs lists none, so a client that keys
//!    metadata or data caches by ETag (cosmount's `ls -l` attributes, its small-file read-ahead)
//!    would see every listed object as unknown. The ETag is the one s3s-fs stored beside the object
//!    (what its HEAD answers).
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
use s3s::dto::{CommonPrefix, ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::Body;
use s3s::{S3Request, S3Response, S3Result, S3};
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
    markers: Arc<Markers>,
    /// Bumped by every request that may write to a bucket: its older cached listings are stale.
    generation: Arc<Generations>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let opt = Opt::parse();

    let fs = s3s_fs::FileSystem::new(&opt.root).map_err(|e| format!("{}: {e:?}", opt.root.display()))?;
    let generation = Arc::new(Generations::default());
    let markers: Arc<Markers> = Arc::default();
    let fs = CachedListings {
        fs,
        root: opt.root.clone(),
        markers: Arc::clone(&markers),
        generation: Arc::clone(&generation),
        cache: Mutex::default(),
    };
    let s3 = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(opt.access_key, opt.secret_key));
        b.build()
    };
    let server = Arc::new(Server {
        s3,
        root: opt.root.clone(),
        markers,
        generation,
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
        let writes = req.method() != Method::GET && req.method() != Method::HEAD;
        let bucket = bucket_of(&req);
        if writes {
            self.generation.bump(&bucket);
        }
        let resp = self.route(req).await;
        if writes {
            self.generation.bump(&bucket);
        }
        resp
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, s3s::HttpError> {
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

/// Write generation of each bucket.
#[derive(Default)]
struct Generations(Mutex<HashMap<String, u64>>);

impl Generations {
    fn bump(&self, bucket: &str) {
        let mut g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *g.entry(bucket.to_string()).or_default() += 1;
    }

    fn get(&self, bucket: &str) -> u64 {
        let g = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get(bucket).copied().unwrap_or(0)
    }
}

/// The (percent-decoded) bucket of a path-style request; "" for none.
fn bucket_of<B>(req: &Request<B>) -> String {
    let path = req.uri().path().trim_start_matches('/');
    let b = path.split('/').next().unwrap_or("");
    percent_decode(b).unwrap_or_else(|| b.to_string())
}

/// A listing view: sorted objects and common prefixes, valid for one write generation.
struct Listing {
    generation: u64,
    objects: Arc<Vec<Object>>,
    prefixes: Arc<Vec<CommonPrefix>>,
}

/// (bucket, prefix, delimiter); the bucket's whole listing is (bucket, None, None).
type ListingKey = (String, Option<String>, Option<String>);
/// One listing answer: its objects and its common prefixes, shared between the pages cut from it.
type ListingView = (Arc<Vec<Object>>, Arc<Vec<CommonPrefix>>);

/// s3s-fs whose ListObjects(V2) answers are computed once per (bucket, prefix, delimiter) and write
/// generation of the bucket (see the module comment), marker objects included.
struct CachedListings {
    fs: s3s_fs::FileSystem,
    root: PathBuf,
    /// Marker objects made through this server: s3s-fs keeps them as bare directories and lists
    /// none of them, where S3 lists `a/` as an object (clients find directories that way).
    markers: Arc<Markers>,
    generation: Arc<Generations>,
    cache: Mutex<HashMap<ListingKey, Listing>>,
}

impl CachedListings {
    fn cached(&self, key: &ListingKey, generation: u64) -> Option<ListingView> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|l| l.generation == generation)
            .map(|l| (Arc::clone(&l.objects), Arc::clone(&l.prefixes)))
    }

    fn store(&self, key: ListingKey, generation: u64, objects: &Arc<Vec<Object>>, prefixes: &Arc<Vec<CommonPrefix>>) {
        // Only if nothing was written meanwhile.
        if self.generation.get(&key.0) != generation {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|k, l| k.0 != key.0 || l.generation == generation);
        cache.insert(
            key,
            Listing {
                generation,
                objects: Arc::clone(objects),
                prefixes: Arc::clone(prefixes),
            },
        );
    }

    /// The bucket's marker objects (`a/`, size 0) whose directory still exists.
    fn marker_objects(&self, bucket: &str) -> Vec<Object> {
        let names: Vec<String> = {
            let markers = self.markers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            markers
                .keys()
                .filter_map(|n| n.strip_prefix(&format!("{bucket}/")).map(str::to_string))
                .collect()
        };
        names
            .into_iter()
            .filter_map(|key| {
                let meta = std::fs::metadata(self.root.join(bucket).join(&key))
                    .ok()
                    .filter(|m| m.is_dir())?;
                Some(Object {
                    key: Some(key),
                    size: Some(0),
                    last_modified: meta.modified().ok().map(s3s::dto::Timestamp::from),
                    ..Default::default()
                })
            })
            .collect()
    }

    /// The ETag s3s-fs stored for `bucket`/`key` (in `.bucket-B.object-K.internal.json` at the
    /// root, B and K in unpadded URL-safe base64), if any.
    fn stored_etag(&self, bucket: &str, key: &str) -> Option<String> {
        let name = format!(".bucket-{}.object-{}.internal.json", b64url(bucket), b64url(key));
        let text = std::fs::read(self.root.join(name)).ok()?;
        let info: serde_json::Value = serde_json::from_slice(&text).ok()?;
        info.get("e_tag")?.as_str().map(str::to_string)
    }

    /// The view of this request's (prefix, delimiter), ignoring its page parameters.
    async fn view(&self, req: &S3Request<ListObjectsV2Input>) -> S3Result<ListingView> {
        let i = &req.input;
        let generation = self.generation.get(&i.bucket);
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        let key = (i.bucket.clone(), nonempty(&i.prefix), nonempty(&i.delimiter));
        if let Some(v) = self.cached(&key, generation) {
            return Ok(v);
        }
        let prefix = i.prefix.as_deref().unwrap_or("");
        let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
        let whole_key = (i.bucket.clone(), None, None);
        let (objects, prefixes) = if let Some((all, _)) = self.cached(&whole_key, generation) {
            // Derived in memory from the bucket's whole listing (markers included).
            let start = all.partition_point(|o| o.key.as_deref().unwrap_or("") < prefix);
            let (mut objects, mut prefixes) = (Vec::new(), Vec::<CommonPrefix>::new());
            for o in &all[start..] {
                let k = o.key.as_deref().unwrap_or("");
                if !k.starts_with(prefix) {
                    break;
                }
                match delimiter.and_then(|d| k[prefix.len()..].find(d).map(|p| &k[..prefix.len() + p + d.len()])) {
                    Some(cp) => {
                        if prefixes.last().and_then(|l| l.prefix.as_deref()) != Some(cp) {
                            prefixes.push(CommonPrefix {
                                prefix: Some(cp.to_string()),
                            });
                        }
                    }
                    None => objects.push(o.clone()),
                }
            }
            (objects, prefixes)
        } else {
            // One s3s-fs walk for the whole answer (s3s-fs walks once per page), plus the markers.
            let mut whole = S3Request {
                input: i.clone(),
                method: req.method.clone(),
                uri: req.uri.clone(),
                headers: req.headers.clone(),
                extensions: http::Extensions::new(),
                credentials: req.credentials.clone(),
                region: req.region.clone(),
                service: req.service.clone(),
                trailing_headers: None,
            };
            whole.input.continuation_token = None;
            whole.input.start_after = None;
            whole.input.max_keys = Some(i32::MAX);
            let out = self.fs.list_objects_v2(whole).await?.output;
            let mut objects = out.contents.unwrap_or_default();
            let mut prefixes = out.common_prefixes.unwrap_or_default();
            for m in self.marker_objects(&i.bucket) {
                let k = m.key.clone().unwrap_or_default();
                let Some(rest) = k.strip_prefix(prefix) else { continue };
                match delimiter.and_then(|d| rest.find(d).map(|p| k[..prefix.len() + p + d.len()].to_string())) {
                    Some(cp) => {
                        if !prefixes.iter().any(|p| p.prefix.as_deref() == Some(cp.as_str())) {
                            prefixes.push(CommonPrefix { prefix: Some(cp) });
                        }
                    }
                    None => objects.push(m),
                }
            }
            // S3 lists every object with its ETag; s3s-fs lists none (clients that key caches
            // by ETag would then see every listed object as unknown). Take the ETag s3s-fs keeps
            // beside each object, as its HEAD does.
            for o in objects.iter_mut().filter(|o| o.e_tag.is_none()) {
                if let Some(k) = o.key.as_deref() {
                    o.e_tag = self.stored_etag(&i.bucket, k).map(s3s::dto::ETag::Strong);
                }
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            objects.dedup_by(|a, b| a.key == b.key);
            prefixes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
            (objects, prefixes)
        };
        let (objects, prefixes) = (Arc::new(objects), Arc::new(prefixes));
        self.store(key, generation, &objects, &prefixes);
        Ok((objects, prefixes))
    }
}

#[async_trait::async_trait]
impl S3 for CachedListings {
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let (objects, prefixes) = self.view(&req).await?;
        let input = req.input;
        // Paged exactly as s3s-fs pages: keys after max(continuation token, start-after), objects
        // and common prefixes merged in key order, up to max-keys; the next token is the last key.
        let after = match (input.continuation_token.as_deref(), input.start_after.as_deref()) {
            (Some(ct), Some(sa)) => Some(if ct >= sa { ct } else { sa }),
            (Some(ct), None) => Some(ct),
            (None, Some(sa)) => Some(sa),
            (None, None) => None,
        };
        let okey = |o: &Object| o.key.clone().unwrap_or_default();
        let pkey = |p: &CommonPrefix| p.prefix.clone().unwrap_or_default();
        let mut oi = after.map_or(0, |a| objects.partition_point(|o| okey(o).as_str() <= a));
        let mut pi = after.map_or(0, |a| prefixes.partition_point(|p| pkey(p).as_str() <= a));
        let max_keys = input.max_keys.unwrap_or(1000);
        let max = usize::try_from(max_keys).unwrap_or(1000);
        let (mut objs, mut prefs, mut last) = (Vec::new(), Vec::new(), None);
        while objs.len() + prefs.len() < max {
            let o = objects.get(oi).map(okey);
            let p = prefixes.get(pi).map(pkey);
            match (o, p) {
                (Some(ok), Some(pk)) if ok < pk => {
                    objs.push(objects[oi].clone());
                    oi += 1;
                    last = Some(ok);
                }
                (_, Some(pk)) => {
                    prefs.push(prefixes[pi].clone());
                    pi += 1;
                    last = Some(pk);
                }
                (Some(ok), None) => {
                    objs.push(objects[oi].clone());
                    oi += 1;
                    last = Some(ok);
                }
                (None, None) => break,
            }
        }
        let is_truncated = max > 0 && (oi < objects.len() || pi < prefixes.len());
        let count = objs.len() + prefs.len();
        let output = ListObjectsV2Output {
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            max_keys: Some(max_keys),
            is_truncated: Some(is_truncated),
            contents: (!objs.is_empty()).then_some(objs),
            common_prefixes: (!prefs.is_empty()).then_some(prefs),
            continuation_token: input.continuation_token,
            next_continuation_token: if is_truncated { last } else { None },
            delimiter: input.delimiter,
            encoding_type: input.encoding_type,
            name: Some(input.bucket),
            prefix: input.prefix,
            start_after: input.start_after,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        // As s3s-fs does it: through ListObjectsV2.
        let v2 = self.list_objects_v2(req.map_input(Into::into)).await?;
        Ok(v2.map_output(|v2| ListObjectsOutput {
            contents: v2.contents,
            common_prefixes: v2.common_prefixes,
            delimiter: v2.delimiter,
            encoding_type: v2.encoding_type,
            name: v2.name,
            prefix: v2.prefix,
            max_keys: v2.max_keys,
            is_truncated: v2.is_truncated,
            next_marker: v2.next_continuation_token,
            ..Default::default()
        }))
    }

    // Everything else: s3s-fs unchanged.
    async fn create_bucket(
        &self,
        req: S3Request<s3s::dto::CreateBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<s3s::dto::CopyObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::CopyObjectOutput>> {
        self.fs.copy_object(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<s3s::dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<s3s::dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<s3s::dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteObjectsOutput>> {
        self.fs.delete_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<s3s::dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<s3s::dto::GetObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::GetObjectOutput>> {
        self.fs.get_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<s3s::dto::HeadBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<s3s::dto::HeadObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::HeadObjectOutput>> {
        self.fs.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<s3s::dto::ListBucketsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<s3s::dto::PutObjectInput>,
    ) -> S3Result<S3Response<s3s::dto::PutObjectOutput>> {
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<s3s::dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<s3s::dto::UploadPartInput>,
    ) -> S3Result<S3Response<s3s::dto::UploadPartOutput>> {
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<s3s::dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<s3s::dto::UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<s3s::dto::ListPartsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<s3s::dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
        self.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<s3s::dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
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

/// Unpadded URL-safe base64, as s3s-fs names its side files.
fn b64url(s: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(s.len().div_ceil(3) * 4);
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn b64url_matches_s3s_fs_names() {
        assert_eq!(super::b64url("bench-ls"), "YmVuY2gtbHM");
        assert_eq!(super::b64url("ls/d00/f4004"), "bHMvZDAwL2Y0MDA0");
        assert_eq!(super::b64url("a"), "YQ");
        assert_eq!(super::b64url("ab"), "YWI");
        assert_eq!(super::b64url("\u{fb}\u{ff}"), "w7vDvw");
    }
}
