//! raw-client: the raw aws-sdk-s3 baseline that cosmount is measured against.
//!
//! Same SDK, same versions and same HTTP stack as the mount, configured the same way
//! (`aws_config::defaults(latest)`, credentials from the environment, path-style addressing,
//! region us-east-1). Each measuring subcommand prints one JSON object on stdout:
//! `{"op":..,"seconds":..,"bytes":..,"mb_s":..,"ops_s":..}` plus a few op-specific fields.
//! MB is 10^6 bytes. Helper subcommands (`gen-tree`, `wait-*`, `await-keys`, `delete-prefix`, `latency`)
//! serve scripts/bench.sh.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = Error> = std::result::Result<T, E>;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Parser)]
#[command(name = "raw-client", about = "Raw aws-sdk-s3 baseline for cosmount's benchmarks")]
struct Cli {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, global = true, env = "BENCH_ENDPOINT_URL")]
    endpoint_url: Option<String>,

    /// Send no request checksums unless an operation requires one (the mount always sends CRC32).
    #[arg(long, global = true)]
    no_checksum: bool,

    /// Upload bodies with `x-amz-content-sha256: UNSIGNED-PAYLOAD` (what the mount and botocore do
    /// over HTTPS) instead of hashing them for the signature.
    #[arg(long, global = true)]
    unsigned_payload: bool,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// CreateBucket (an existing bucket of ours is fine).
    CreateBucket {
        #[arg(long)]
        bucket: String,
    },
    /// Upload a file: CreateMultipartUpload, UploadPart N at a time, CompleteMultipartUpload.
    PutMultipart {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        file: PathBuf,
        /// Part size in MiB.
        #[arg(long, default_value_t = 8)]
        part_size: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Download an object as ranged GETs, N in flight; into --out (at their offsets) or discarded.
    GetRanged {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        /// Range size in MiB.
        #[arg(long, default_value_t = 8)]
        range_size: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// PUT COUNT objects of SIZE bytes as PREFIX/dNN/fNNNN over DIRS directories, C in flight;
    /// or, with --from-dir, every file under that directory as PREFIX/<relative path>.
    PutSmall {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
        #[arg(long, required_unless_present = "from_dir")]
        count: Option<usize>,
        #[arg(long, required_unless_present = "from_dir")]
        size: Option<usize>,
        #[arg(long, default_value_t = 50)]
        dirs: usize,
        /// Upload this directory's files (read into memory before the clock starts).
        #[arg(long, conflicts_with_all = ["count", "size"])]
        from_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// List PREFIX (paginated), then GET every object, C in flight; optionally store them under --out-dir.
    GetSmall {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Write each object to OUT_DIR/<key without PREFIX/>.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Paginated ListObjectsV2 (1 000 keys a page) of PREFIX, optionally with a delimiter.
    List {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        delimiter: Option<String>,
    },
    /// Read several objects at once: all their ranges (round-robin over the objects) through one
    /// pool of C GETs in flight; the aggregate MB/s.
    GetMany {
        #[arg(long)]
        bucket: String,
        /// An object to read (repeat the option for each).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// Range size in MiB.
        #[arg(long, default_value_t = 8)]
        range_size: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Ranged GETs of BLOCK bytes at the offsets in OFFSETS_FILE (one decimal offset a line), C in
    /// flight; with --verify-file each answer is compared (after the clock stopped) with the same
    /// bytes of that local copy. ops/s.
    RandomRead {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        offsets_file: PathBuf,
        #[arg(long, default_value_t = 65536)]
        block: u64,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// A local copy of the object to check every block against.
        #[arg(long)]
        verify_file: Option<PathBuf>,
    },
    /// Paginated ListObjectsV2 of PREFIX (optionally with a delimiter), then HeadObject of every
    /// key, C in flight, started as each page arrives: what a correct `ls -l` with full POSIX
    /// attributes (kept in x-amz-meta-*) needs.
    ListHead {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        delimiter: Option<String>,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// PUT a 1-byte object, then GET it COUNT times one after another: request latency.
    Latency {
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "bench-latency-probe")]
        key: String,
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Wait until KEY exists with SIZE bytes (HeadObject every 20 ms), or fail after TIMEOUT seconds.
    WaitObject {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        size: i64,
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
    },
    /// Wait until PREFIX holds COUNT objects totalling BYTES (a LIST every 50 ms), or fail after TIMEOUT s.
    WaitPrefix {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        bytes: i64,
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
    },
    /// Wait until a LIST of PREFIX shows every key of MANIFEST (`SIZE<TAB>KEY` lines) with its
    /// size. Prints `{"op":"await-keys","ready":true}` once the client is warmed up, then waits for
    /// a line on stdin (the written command returned; EOF first: give up) and LISTs right away, then
    /// INTERVAL ms after each LIST that still misses something, up to TIMEOUT seconds. `seconds`
    /// runs from that line to the end of the LIST that showed everything (`polls` 1: the first).
    AwaitKeys {
        #[arg(long)]
        bucket: String,
        /// The LIST prefix: every key of the manifest starts with it.
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long, default_value_t = 50)]
        interval_ms: u64,
        #[arg(long, default_value_t = 600.0)]
        timeout: f64,
    },
    /// Delete every object under PREFIX/ (DeleteObjects, 1 000 keys a request; markers too).
    DeletePrefix {
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        prefix: String,
    },
    /// Create DIR/dNN/fNNNN: COUNT files of SIZE random bytes over DIRS directories (no S3).
    GenTree {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        size: usize,
        #[arg(long, default_value_t = 50)]
        dirs: usize,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(Some(v)) => println!("{v}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("raw-client: {}", error_chain(e.as_ref()));
            std::process::exit(1);
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn client(cli: &Cli) -> Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let mut b = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true);
    if let Some(url) = &cli.endpoint_url {
        b = b.endpoint_url(url);
    }
    if cli.no_checksum {
        b = b
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
    }
    Client::from_conf(b.build())
}

/// The standard result object.
fn report(op: &str, seconds: f64, bytes: u64, ops: u64, extra: Value) -> Value {
    let mut v = json!({
        "op": op,
        "seconds": round(seconds, 4),
        "bytes": bytes,
        "mb_s": round(bytes as f64 / 1e6 / seconds, 1),
        "ops_s": round(ops as f64 / seconds, 1),
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

async fn run(cli: Cli) -> Result<Option<Value>> {
    if let Cmd::GenTree { dir, count, size, dirs } = &cli.cmd {
        gen_tree(dir, *count, *size, *dirs)?;
        return Ok(None);
    }
    let c = client(&cli).await;
    let checksum = !cli.no_checksum;
    let unsigned = cli.unsigned_payload;
    // Warm up before any clock starts: the SDK's first request pays one-time costs (HTTP client and
    // its TLS configuration, identity cache, a new connection) that a mounted file system paid at
    // mount time (its bucket check).
    if let Some(bucket) = warm_up_bucket(&cli.cmd) {
        let _ = c.head_bucket().bucket(bucket).send().await;
    }
    match cli.cmd {
        Cmd::CreateBucket { bucket } => {
            match c.create_bucket().bucket(&bucket).send().await {
                Ok(_) => {}
                Err(e) => {
                    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                        .unwrap_or("")
                        .to_string();
                    if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
                        return Err(e.into());
                    }
                }
            }
            Ok(None)
        }
        Cmd::PutMultipart {
            bucket,
            key,
            file,
            part_size,
            concurrency,
        } => put_multipart(
            &c,
            &bucket,
            &key,
            &file,
            part_size * MIB,
            concurrency,
            checksum,
            unsigned,
        )
        .await
        .map(Some),
        Cmd::GetRanged {
            bucket,
            key,
            range_size,
            concurrency,
            out,
        } => get_ranged(&c, &bucket, &key, range_size * MIB, concurrency, out.as_deref())
            .await
            .map(Some),
        Cmd::PutSmall {
            bucket,
            prefix,
            count,
            size,
            dirs,
            from_dir,
            concurrency,
        } => {
            let prefix = prefix.trim_end_matches('/');
            let objects = match from_dir {
                Some(dir) => read_tree(&dir, prefix)?,
                None => {
                    let size = size.unwrap_or(0);
                    (0..count.unwrap_or(0))
                        .map(|i| {
                            (
                                small_key(prefix, i, dirs),
                                Bytes::from(pseudo_random(i as u64 + 1, size)),
                            )
                        })
                        .collect()
                }
            };
            put_small(&c, &bucket, objects, concurrency, checksum, unsigned)
                .await
                .map(Some)
        }
        Cmd::GetSmall {
            bucket,
            prefix,
            concurrency,
            out_dir,
        } => get_small(&c, &bucket, &prefix, concurrency, out_dir.as_deref())
            .await
            .map(Some),
        Cmd::List {
            bucket,
            prefix,
            delimiter,
        } => list(&c, &bucket, &prefix, delimiter.as_deref()).await.map(Some),
        Cmd::GetMany {
            bucket,
            keys,
            range_size,
            concurrency,
        } => get_many(&c, &bucket, &keys, range_size * MIB, concurrency)
            .await
            .map(Some),
        Cmd::RandomRead {
            bucket,
            key,
            offsets_file,
            block,
            concurrency,
            verify_file,
        } => random_read(
            &c,
            &bucket,
            &key,
            &offsets_file,
            block,
            concurrency,
            verify_file.as_deref(),
        )
        .await
        .map(Some),
        Cmd::ListHead {
            bucket,
            prefix,
            delimiter,
            concurrency,
        } => list_head(&c, &bucket, &prefix, delimiter.as_deref(), concurrency)
            .await
            .map(Some),
        Cmd::Latency { bucket, key, count } => latency(&c, &bucket, &key, count).await.map(Some),
        Cmd::WaitObject {
            bucket,
            key,
            size,
            timeout,
        } => wait_object(&c, &bucket, &key, size, timeout).await.map(Some),
        Cmd::WaitPrefix {
            bucket,
            prefix,
            count,
            bytes,
            timeout,
        } => wait_prefix(&c, &bucket, &prefix, count, bytes, timeout).await.map(Some),
        Cmd::AwaitKeys {
            bucket,
            prefix,
            manifest,
            interval_ms,
            timeout,
        } => await_keys(&c, &bucket, &prefix, &manifest, interval_ms, timeout)
            .await
            .map(Some),
        Cmd::DeletePrefix { bucket, prefix } => delete_prefix(&c, &bucket, &prefix).await.map(Some),
        Cmd::GenTree { .. } => unreachable!(),
    }
}

/// The bucket a measuring subcommand works on.
fn warm_up_bucket(cmd: &Cmd) -> Option<&str> {
    match cmd {
        Cmd::CreateBucket { .. } | Cmd::GenTree { .. } => None,
        Cmd::PutMultipart { bucket, .. }
        | Cmd::GetRanged { bucket, .. }
        | Cmd::PutSmall { bucket, .. }
        | Cmd::GetSmall { bucket, .. }
        | Cmd::List { bucket, .. }
        | Cmd::GetMany { bucket, .. }
        | Cmd::RandomRead { bucket, .. }
        | Cmd::ListHead { bucket, .. }
        | Cmd::Latency { bucket, .. }
        | Cmd::WaitObject { bucket, .. }
        | Cmd::WaitPrefix { bucket, .. }
        | Cmd::AwaitKeys { bucket, .. }
        | Cmd::DeletePrefix { bucket, .. } => Some(bucket),
    }
}

// The subcommand's options, passed through one by one as for the other subcommands.
#[allow(clippy::too_many_arguments)]
async fn put_multipart(
    c: &Client,
    bucket: &str,
    key: &str,
    file: &Path,
    part: u64,
    concurrency: usize,
    checksum: bool,
    unsigned: bool,
) -> Result<Value> {
    let f = Arc::new(std::fs::File::open(file)?);
    let size = f.metadata()?.len();
    let nparts = size.div_ceil(part).max(1);
    let start = Instant::now();
    let mut create = c.create_multipart_upload().bucket(bucket).key(key);
    if checksum {
        create = create.checksum_algorithm(ChecksumAlgorithm::Crc32);
    }
    let upload_id = create
        .send()
        .await?
        .upload_id
        .ok_or("CreateMultipartUpload returned no upload id")?;
    let uploaded = futures::stream::iter(0..nparts)
        .map(|i| {
            let f = Arc::clone(&f);
            let upload_id = upload_id.clone();
            async move {
                let off = i * part;
                let len = part.min(size - off) as usize;
                let buf = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut v = vec![0u8; len];
                    f.read_exact_at(&mut v, off)?;
                    Ok(v)
                })
                .await??;
                let number = i as i32 + 1;
                let mut req = c
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf));
                if checksum {
                    req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
                }
                let out = if unsigned {
                    req.customize().disable_payload_signing().send().await?
                } else {
                    req.send().await?
                };
                Ok::<_, Error>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag)
                        .set_checksum_crc32(out.checksum_crc32)
                        .build(),
                )
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await;
    let mut parts = match uploaded {
        Ok(p) => p,
        Err(e) => {
            let _ = c
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            return Err(e);
        }
    };
    parts.sort_by_key(|p| p.part_number);
    let completing = Instant::now();
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "put-multipart",
        secs,
        size,
        nparts,
        json!({"parts": nparts, "part_mib": part / MIB, "concurrency": concurrency, "checksum": checksum,
               "complete_seconds": round(completing.elapsed().as_secs_f64(), 4)}),
    ))
}

async fn get_ranged(
    c: &Client,
    bucket: &str,
    key: &str,
    range: u64,
    concurrency: usize,
    out: Option<&Path>,
) -> Result<Value> {
    let start = Instant::now();
    let size = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await?
        .content_length
        .unwrap_or(0) as u64;
    let out = match out {
        Some(p) => {
            let f = std::fs::File::create(p)?;
            f.set_len(size)?;
            Some(Arc::new(f))
        }
        None => None,
    };
    let nranges = size.div_ceil(range);
    let total: u64 = futures::stream::iter(0..nranges)
        .map(|i| {
            let out = out.clone();
            async move {
                let off = i * range;
                let end = (off + range).min(size) - 1;
                let resp = c
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes={off}-{end}"))
                    .send()
                    .await?;
                let mut body = resp.body;
                let mut n = 0u64;
                match out {
                    None => {
                        while let Some(chunk) = body.try_next().await? {
                            n += chunk.len() as u64;
                        }
                    }
                    Some(f) => {
                        let data = body.collect().await?.into_bytes();
                        n = data.len() as u64;
                        tokio::task::spawn_blocking(move || f.write_all_at(&data, off)).await??;
                    }
                }
                if n != end - off + 1 {
                    return Err::<u64, Error>(format!("range {off}-{end}: got {n} bytes").into());
                }
                Ok(n)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "get-ranged",
        secs,
        total,
        nranges,
        json!({"ranges": nranges, "range_mib": range / MIB, "concurrency": concurrency}),
    ))
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn small_key(prefix: &str, i: usize, dirs: usize) -> String {
    format!("{prefix}/d{:02}/f{i:04}", i % dirs.max(1))
}

/// Every regular file under `dir` (recursively) as (`prefix/<relative path>`, contents), sorted.
fn read_tree(dir: &Path, prefix: &str) -> Result<Vec<(String, Bytes)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)?
                    .to_str()
                    .ok_or("non-UTF-8 file name")?
                    .to_string();
                out.push((format!("{prefix}/{rel}"), Bytes::from(std::fs::read(&path)?)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn put_small(
    c: &Client,
    bucket: &str,
    objects: Vec<(String, Bytes)>,
    concurrency: usize,
    checksum: bool,
    unsigned: bool,
) -> Result<Value> {
    let count = objects.len();
    let bytes: u64 = objects.iter().map(|o| o.1.len() as u64).sum();
    let start = Instant::now();
    futures::stream::iter(objects)
        .map(|(key, body)| async move {
            let mut req = c.put_object().bucket(bucket).key(key).body(ByteStream::from(body));
            if checksum {
                req = req.checksum_algorithm(ChecksumAlgorithm::Crc32);
            }
            let sent = if unsigned {
                req.customize().disable_payload_signing().send().await
            } else {
                req.send().await
            };
            sent.map(|_| ()).map_err(Error::from)
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "put-small",
        secs,
        bytes,
        count as u64,
        json!({"files": count, "concurrency": concurrency, "checksum": checksum}),
    ))
}

/// Every object under `prefix` except directory markers, as (key, size).
async fn list_all(c: &Client, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for o in page?.contents.unwrap_or_default() {
            let key = o.key.unwrap_or_default();
            // Directory markers (`dir/`) are not files of the data set.
            if !key.ends_with('/') {
                out.push((key, o.size.unwrap_or(0)));
            }
        }
    }
    Ok(out)
}

async fn get_small(
    c: &Client,
    bucket: &str,
    prefix: &str,
    concurrency: usize,
    out_dir: Option<&Path>,
) -> Result<Value> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let start = Instant::now();
    let keys = list_all(c, bucket, &prefix).await?;
    let listed = start.elapsed().as_secs_f64();
    let nkeys = keys.len();
    let total: u64 = futures::stream::iter(keys)
        .map(|(key, size)| {
            let prefix = &prefix;
            async move {
                let resp = c.get_object().bucket(bucket).key(&key).send().await?;
                let data = resp.body.collect().await?.into_bytes();
                if data.len() as i64 != size {
                    return Err::<u64, Error>(format!("{key}: listed {size} bytes, got {}", data.len()).into());
                }
                if let Some(dir) = out_dir {
                    let path = dir.join(&key[prefix.len()..]);
                    if let Some(parent) = path.parent() {
                        tokio::fs::create_dir_all(parent).await?;
                    }
                    tokio::fs::write(&path, &data).await?;
                }
                Ok(data.len() as u64)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "get-small",
        secs,
        total,
        nkeys as u64,
        json!({"files": nkeys, "list_seconds": round(listed, 4), "concurrency": concurrency}),
    ))
}

async fn list(c: &Client, bucket: &str, prefix: &str, delimiter: Option<&str>) -> Result<Value> {
    let start = Instant::now();
    let mut req = c.list_objects_v2().bucket(bucket).prefix(prefix).max_keys(1000);
    if let Some(d) = delimiter {
        req = req.delimiter(d);
    }
    let mut pages = req.into_paginator().send();
    let (mut keys, mut prefixes, mut npages) = (0u64, 0u64, 0u64);
    let mut first_page = 0f64;
    while let Some(page) = pages.next().await {
        let page = page?;
        if npages == 0 {
            first_page = start.elapsed().as_secs_f64();
        }
        npages += 1;
        keys += page.contents().len() as u64;
        prefixes += page.common_prefixes().len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "list",
        secs,
        0,
        keys + prefixes,
        json!({"keys": keys, "common_prefixes": prefixes, "pages": npages, "delimiter": delimiter,
               "first_page_seconds": round(first_page, 4)}),
    ))
}

/// Drain a GET's body, counting its bytes; optionally keep them.
async fn drain(body: ByteStream, keep: bool) -> Result<(u64, Option<Bytes>)> {
    if keep {
        let b = body.collect().await?.into_bytes();
        return Ok((b.len() as u64, Some(b)));
    }
    let mut body = body;
    let mut n = 0u64;
    while let Some(chunk) = body.try_next().await? {
        n += chunk.len() as u64;
    }
    Ok((n, None))
}

async fn get_many(c: &Client, bucket: &str, keys: &[String], range: u64, concurrency: usize) -> Result<Value> {
    let start = Instant::now();
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        let h = c.head_object().bucket(bucket).key(k).send().await?;
        sizes.push(h.content_length.unwrap_or(0) as u64);
    }
    // Ranges interleaved over the objects: range 0 of each, then range 1 of each, ...
    let max_ranges = sizes.iter().map(|s| s.div_ceil(range)).max().unwrap_or(0);
    let mut jobs = Vec::new();
    for i in 0..max_ranges {
        for (k, &size) in keys.iter().zip(&sizes) {
            if i * range < size {
                jobs.push((k.as_str(), i * range, (i * range + range).min(size) - 1));
            }
        }
    }
    let njobs = jobs.len() as u64;
    let total: u64 = futures::stream::iter(jobs)
        .map(|(key, off, end)| async move {
            let resp = c
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(format!("bytes={off}-{end}"))
                .send()
                .await?;
            let (n, _) = drain(resp.body, false).await?;
            if n != end - off + 1 {
                return Err::<u64, Error>(format!("{key} range {off}-{end}: got {n} bytes").into());
            }
            Ok(n)
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await?;
    let expected: u64 = sizes.iter().sum();
    if total != expected {
        return Err(format!("read {total} bytes, expected {expected}").into());
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "get-many",
        secs,
        total,
        njobs,
        json!({"objects": keys.len(), "ranges": njobs, "range_mib": range / MIB, "concurrency": concurrency}),
    ))
}

async fn random_read(
    c: &Client,
    bucket: &str,
    key: &str,
    offsets_file: &Path,
    block: u64,
    concurrency: usize,
    verify: Option<&Path>,
) -> Result<Value> {
    let offsets: Vec<u64> = std::fs::read_to_string(offsets_file)?
        .split_whitespace()
        .map(|w| w.parse::<u64>())
        .collect::<Result<_, _>>()?;
    let count = offsets.len() as u64;
    let keep = verify.is_some();
    let start = Instant::now();
    let blocks: Vec<(u64, Option<Bytes>)> = futures::stream::iter(offsets)
        .map(|off| async move {
            let end = off + block - 1;
            let resp = c
                .get_object()
                .bucket(bucket)
                .key(key)
                .range(format!("bytes={off}-{end}"))
                .send()
                .await?;
            let (n, data) = drain(resp.body, keep).await?;
            if n != block {
                return Err::<_, Error>(format!("range {off}-{end}: got {n} bytes").into());
            }
            Ok((off, data))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    // Checked after the clock stopped: the local copy may not be in the page cache.
    if let Some(p) = verify {
        let f = std::fs::File::open(p)?;
        let mut want = vec![0u8; block as usize];
        for (off, data) in &blocks {
            f.read_exact_at(&mut want, *off)?;
            if data.as_deref() != Some(&want[..]) {
                return Err(format!("range at {off}: wrong bytes").into());
            }
        }
    }
    Ok(report(
        "random-read",
        secs,
        count * block,
        count,
        json!({"reads": count, "block": block, "concurrency": concurrency, "verified": keep}),
    ))
}

async fn list_head(
    c: &Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    concurrency: usize,
) -> Result<Value> {
    let start = Instant::now();
    let mut req = c.list_objects_v2().bucket(bucket).prefix(prefix).max_keys(1000);
    if let Some(d) = delimiter {
        req = req.delimiter(d);
    }
    // Pages feed the HEADs as they arrive, so listing and HEADs overlap.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<(String, i64)>>(10_000);
    let lister = {
        let mut pages = req.into_paginator().send();
        async move {
            let mut n = 0u64;
            while let Some(page) = pages.next().await {
                match page {
                    Ok(p) => {
                        for o in p.contents.unwrap_or_default() {
                            n += 1;
                            let _ = tx.send(Ok((o.key.unwrap_or_default(), o.size.unwrap_or(0)))).await;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        break;
                    }
                }
            }
            n
        }
    };
    let heads = tokio_stream_of(rx)
        .map(|item| async move {
            let (key, size) = item?;
            let h = c.head_object().bucket(bucket).key(&key).send().await?;
            if h.content_length.unwrap_or(-1) != size {
                return Err::<u64, Error>(
                    format!("{key}: listed {size} bytes, HEAD says {:?}", h.content_length).into(),
                );
            }
            Ok(1u64)
        })
        .buffer_unordered(concurrency.max(1))
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) });
    let (listed, headed) = tokio::join!(lister, heads);
    let headed = headed?;
    if headed != listed {
        return Err(format!("listed {listed} keys, HEAD {headed}").into());
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "list-head",
        secs,
        0,
        listed,
        json!({"keys": listed, "concurrency": concurrency, "delimiter": delimiter}),
    ))
}

fn tokio_stream_of<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn latency(c: &Client, bucket: &str, key: &str, count: usize) -> Result<Value> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await?;
    let mut ms = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count.max(1) {
        let t = Instant::now();
        let data = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await?
            .body
            .collect()
            .await?;
        if data.into_bytes().len() != 1 {
            return Err("latency probe: wrong size".into());
        }
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let secs = start.elapsed().as_secs_f64();
    c.delete_object().bucket(bucket).key(key).send().await?;
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    Ok(report(
        "latency",
        secs,
        ms.len() as u64,
        ms.len() as u64,
        json!({"gets": ms.len(), "mean_ms": round(mean, 3), "p50_ms": round(pct(0.5), 3),
               "p99_ms": round(pct(0.99), 3), "max_ms": round(pct(1.0), 3)}),
    ))
}

async fn wait_object(c: &Client, bucket: &str, key: &str, size: i64, timeout: f64) -> Result<Value> {
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let seen = match c.head_object().bucket(bucket).key(key).send().await {
            Ok(h) => h.content_length,
            Err(_) => None,
        };
        if seen == Some(size) {
            return Ok(
                json!({"op": "wait-object", "seconds": round(start.elapsed().as_secs_f64(), 4), "polls": polls}),
            );
        }
        if start.elapsed().as_secs_f64() > timeout {
            return Err(format!("{bucket}/{key}: wanted {size} bytes, last seen {seen:?} after {timeout} s").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_prefix(c: &Client, bucket: &str, prefix: &str, count: usize, bytes: i64, timeout: f64) -> Result<Value> {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let keys = list_all(c, bucket, &prefix).await?;
        let total: i64 = keys.iter().map(|k| k.1).sum();
        if keys.len() == count && total == bytes {
            return Ok(
                json!({"op": "wait-prefix", "seconds": round(start.elapsed().as_secs_f64(), 4), "polls": polls}),
            );
        }
        if start.elapsed().as_secs_f64() > timeout {
            return Err(format!(
                "{bucket}/{prefix}: wanted {count} objects / {bytes} bytes, last seen {} / {total} after {timeout} s",
                keys.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn await_keys(
    c: &Client,
    bucket: &str,
    prefix: &str,
    manifest: &Path,
    interval_ms: u64,
    timeout: f64,
) -> Result<Value> {
    use std::io::Write as _;
    use tokio::io::AsyncBufReadExt as _;
    let expected = cosmount_bench::manifest::parse(&std::fs::read_to_string(manifest)?)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", json!({"op": "await-keys", "ready": true}))?;
        out.flush()?;
    }
    let mut line = String::new();
    if tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?
        == 0
    {
        return Err("cancelled (stdin closed before the command returned)".into());
    }
    let start = Instant::now();
    let (mut polls, mut list_secs) = (0u32, 0f64);
    loop {
        polls += 1;
        let t = Instant::now();
        let listed = list_all(c, bucket, prefix).await?;
        list_secs += t.elapsed().as_secs_f64();
        let u = cosmount_bench::manifest::unmet(&expected, &listed);
        if u.is_met() {
            return Ok(
                json!({"op": "await-keys", "seconds": round(start.elapsed().as_secs_f64(), 4),
                             "polls": polls, "list_seconds": round(list_secs, 4), "keys": expected.len()}),
            );
        }
        if start.elapsed().as_secs_f64() > timeout {
            return Err(format!(
                "{bucket}/{prefix}: after {timeout} s, {} of {} keys not listed and {} with another size (first: {})",
                u.missing,
                expected.len(),
                u.wrong_size,
                u.first.unwrap_or_default()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}

async fn delete_prefix(c: &Client, bucket: &str, prefix: &str) -> Result<Value> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let start = Instant::now();
    let mut keys = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(page?.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
    }
    // Deepest first, so that markers come after what they hold.
    keys.sort_by(|a, b| b.cmp(a));
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()?;
        let out = c
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(objects)).quiet(true).build()?)
            .send()
            .await?;
        if let Some(e) = out.errors.unwrap_or_default().first() {
            return Err(format!("delete {}: {}", e.key().unwrap_or(""), e.message().unwrap_or("")).into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(report(
        "delete-prefix",
        secs,
        0,
        keys.len() as u64,
        json!({"keys": keys.len()}),
    ))
}

fn gen_tree(dir: &Path, count: usize, size: usize, dirs: usize) -> Result<()> {
    for d in 0..dirs.max(1) {
        std::fs::create_dir_all(dir.join(format!("d{d:02}")))?;
    }
    let seed0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    for i in 0..count {
        let path = dir.join(format!("d{:02}/f{i:04}", i % dirs.max(1)));
        std::fs::write(
            path,
            pseudo_random(seed0 ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407), size),
        )?;
    }
    Ok(())
}
