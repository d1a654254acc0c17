//! The command line: clap definitions, grouped help and value parsers; the conversion into
//! [`MountConfig`](crate::config::MountConfig) is `convert.rs`.
//!
//! Only this module knows about clap. Every option that takes a secret-free value may also come
//! from the environment (`COSMOUNT_*`), which keeps long fstab/systemd lines short.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::creds::endpoints::Network;

mod convert;
pub use crate::store::buckets::check_bucket_name;

const CONNECTION: &str = "Connection";
const MOUNT: &str = "Mount";
const PERMISSIONS: &str = "Owner and permissions";
const CACHING: &str = "Caching";
const LOGGING: &str = "Logging";
const WRITING: &str = "Writing";
const BUCKETS: &str = "Account mount (every bucket a folder)";
const WORM: &str = "Immutability (retention and legal holds)";
const CREDENTIALS: &str = "Credentials (secrets come from files or the environment, never from the command line)";

/// Mount an IBM Cloud Object Storage (or any S3-compatible) bucket as a folder.
#[derive(Parser, Debug, Clone)]
#[command(name = "cosmount", version, about, long_about = None)]
#[command(after_help = "Example (IBM COS, HMAC keys in ~/.aws/credentials):\n  \
    cosmount --endpoint-url https://s3.us-south.cloud-object-storage.appdomain.cloud --region us-south \\\n    \
    my-bucket:reports /mnt/reports\n\nUnmount with: fusermount3 -u /mnt/reports (or umount)")]
pub struct Cli {
    /// Bucket to mount, optionally with a key prefix to mount instead of the whole bucket (with
    /// --all-buckets: the mount point).
    #[arg(value_name = "BUCKET[:PREFIX]")]
    pub bucket: String,

    /// Directory to mount on (must exist, be a directory, be empty and not already a mount).
    #[arg(value_name = "MOUNTPOINT", required_unless_present = "all_buckets")]
    pub mountpoint: Option<PathBuf>,

    /// Mount every bucket the credentials can list, each as a folder (`cosmount --all-buckets
    /// MOUNTPOINT`): mkdir creates a bucket, rmdir deletes an empty one.
    #[arg(long, help_heading = BUCKETS)]
    pub all_buckets: bool,

    /// Location constraint of buckets made by mkdir (IBM: location and storage class, such as
    /// us-south-standard, us-south-cold or us-south-smart); default: the endpoint's.
    #[arg(long, value_name = "CONSTRAINT", env = "COSMOUNT_LOCATION_CONSTRAINT", help_heading = BUCKETS)]
    pub location_constraint: Option<String>,

    /// IBM Key Protect root key that encrypts buckets made by mkdir (sent as ibm-sse-kp-customer-root-key-crn).
    #[arg(long, value_name = "CRN", env = "COSMOUNT_KP_ROOT_KEY_CRN", help_heading = BUCKETS)]
    pub kp_root_key_crn: Option<String>,

    /// Key Protect algorithm sent with --kp-root-key-crn (ibm-sse-kp-encryption-algorithm).
    #[arg(long, value_name = "ALGORITHM", default_value = "AES256", help_heading = BUCKETS)]
    pub kp_algorithm: String,

    /// S3 endpoint URL, e.g. https://s3.eu-de.cloud-object-storage.appdomain.cloud or http://127.0.0.1:9000.
    #[arg(long, env = "COSMOUNT_ENDPOINT_URL", help_heading = CONNECTION)]
    pub endpoint_url: Option<String>,

    /// Region (for IBM COS the location, such as us-south or eu-de).
    #[arg(long, env = "COSMOUNT_REGION", help_heading = CONNECTION)]
    pub region: Option<String>,

    /// S3 requests in flight at once over the whole mount (the bound of the shared connection pool).
    #[arg(long, default_value = "64", value_name = "N", help_heading = CONNECTION)]
    pub max_connections: usize,

    /// Address the bucket as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (local servers need this).
    #[arg(long, help_heading = CONNECTION)]
    pub force_path_style: bool,

    /// Profile of ~/.aws/config and ~/.aws/credentials to take credentials and region from.
    #[arg(long, env = "AWS_PROFILE", help_heading = CONNECTION)]
    pub profile: Option<String>,

    /// File holding an IBM Cloud API key (traded for IAM bearer tokens) [env: IBM_API_KEY_ID holds the key itself].
    #[arg(long, value_name = "FILE", help_heading = CREDENTIALS)]
    pub api_key_file: Option<PathBuf>,

    /// IBM COS service credential (JSON) to use instead of ~/.bluemix/cos_credentials [env: COS_CREDENTIALS_FILE].
    #[arg(long, value_name = "FILE", help_heading = CREDENTIALS)]
    pub cos_credentials: Option<PathBuf>,

    /// IAM endpoint for API keys [env: IBM_AUTH_ENDPOINT; default: https://iam.cloud.ibm.com].
    #[arg(long, value_name = "URL", help_heading = CREDENTIALS)]
    pub iam_endpoint: Option<String>,

    /// COS service instance id (CRN) sent as ibm-service-instance-id [env: IBM_SERVICE_INSTANCE_ID].
    #[arg(long, value_name = "CRN", help_heading = CREDENTIALS)]
    pub service_instance_id: Option<String>,

    /// Network of the COS endpoint derived from --region when no --endpoint-url is given.
    #[arg(long, value_enum, default_value = "public", help_heading = CONNECTION)]
    pub cos_network: Network,

    /// Attempts per S3 request before an error is returned (transient failures are retried).
    #[arg(long, default_value_t = 6, value_name = "N", help_heading = CONNECTION)]
    pub max_attempts: u32,

    /// An S3 request that moves no bytes for this many seconds, retries included, fails with
    /// ETIMEDOUT (a hung server or a dead network). Transfers that keep moving are never cut off.
    #[arg(long, env = "COSMOUNT_TIMEOUT", default_value_t = 30, value_name = "SECONDS", help_heading = CONNECTION)]
    pub timeout: u64,

    /// An attempt of an S3 request that moves no bytes for this many seconds is abandoned and
    /// retried on a new connection (within --timeout).
    #[arg(long, default_value_t = 10, value_name = "SECONDS", help_heading = CONNECTION)]
    pub request_timeout: u64,

    /// Seconds to wait for the bucket check before mounting.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", help_heading = CONNECTION)]
    pub connect_timeout: u64,

    /// Stay in the foreground instead of returning once the mount is live.
    #[arg(short, long, help_heading = MOUNT)]
    pub foreground: bool,

    /// Mount read-only.
    #[arg(long, help_heading = MOUNT)]
    pub read_only: bool,

    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root).
    #[arg(long, conflicts_with = "allow_root", help_heading = MOUNT)]
    pub allow_other: bool,

    /// Let root access the mount too.
    #[arg(long, help_heading = MOUNT)]
    pub allow_root: bool,

    /// Mount even if the mount point is not empty (its files are hidden while mounted).
    #[arg(long, help_heading = MOUNT)]
    pub allow_non_empty: bool,

    /// FUSE worker threads (requests served in parallel).
    #[arg(long, default_value_t = 16, value_name = "N", help_heading = MOUNT)]
    pub fuse_threads: usize,

    /// Owner shown for every file and directory [default: your uid].
    #[arg(long, help_heading = PERMISSIONS)]
    pub uid: Option<u32>,

    /// Group shown for every file and directory [default: your gid].
    #[arg(long, help_heading = PERMISSIONS)]
    pub gid: Option<u32>,

    /// Permission bits of files, in octal.
    #[arg(long, default_value = "644", value_parser = parse_mode, help_heading = PERMISSIONS)]
    pub file_mode: u16,

    /// Permission bits of directories, in octal.
    #[arg(long, default_value = "755", value_parser = parse_mode, help_heading = PERMISSIONS)]
    pub dir_mode: u16,

    /// Seconds that listed attributes, lookups and absences are trusted before asking S3 again.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "SECONDS", help_heading = CACHING)]
    pub metadata_ttl: Duration,

    /// Trust listings for attributes: no HEAD per file, so mode, owner and mtime kept in object
    /// metadata are not shown (fastest `ls -l` of big read-mostly trees).
    #[arg(long, help_heading = CACHING)]
    pub listing_attributes: bool,

    /// Memory for object data, shared by the read cache, read-ahead and write buffers (e.g.
    /// 512M, 2G). Under pressure the cache gives way first, read-ahead shrinks, writers wait.
    #[arg(long, default_value = "512M", value_parser = crate::budget::parse_size, value_name = "SIZE", help_heading = CACHING)]
    pub max_memory: u64,

    /// Also keep read blocks on disk in this directory (its `cosmount-blocks` subdirectory is
    /// emptied at mount; use one directory per mount).
    #[arg(long, value_name = "DIR", help_heading = CACHING)]
    pub cache_dir: Option<PathBuf>,

    /// Hard cap on the disk cache (needs --cache-dir).
    #[arg(long, default_value = "10G", value_parser = crate::budget::parse_size, value_name = "SIZE", requires = "cache_dir", help_heading = CACHING)]
    pub max_cache_size: u64,

    /// Multipart part size in MiB (5 or more); files up to one part go up as a single PutObject.
    #[arg(long, default_value_t = 8, value_name = "MiB", help_heading = WRITING)]
    pub part_size: u64,

    /// Parts uploaded in parallel per file.
    #[arg(long, default_value_t = 8, value_name = "N", help_heading = WRITING)]
    pub upload_concurrency: usize,

    /// Directory where files being written are staged until they are uploaded [default: $TMPDIR or /tmp].
    #[arg(long, value_name = "DIR", help_heading = WRITING)]
    pub staging_dir: Option<PathBuf>,

    /// Return from close once the file is durable in this directory (written, synced,
    /// checksummed) and upload it in the background; fsync waits for S3, `sync DIR` uploads a
    /// tree now, unmount waits for the rest, a crash leaves them for the next mount.
    #[arg(long, value_name = "DIR", help_heading = WRITING)]
    pub write_cache: Option<PathBuf>,

    /// Hard cap on the write cache's entries; a close beyond it uploads at once.
    #[arg(long, default_value = "4G", value_parser = crate::budget::parse_size, value_name = "SIZE", requires = "write_cache", help_heading = WRITING)]
    pub write_cache_size: u64,

    /// Files larger than this are uploaded at close even with --write-cache (their parts
    /// already stream while they are written).
    #[arg(long, default_value = "64M", value_parser = crate::budget::parse_size, value_name = "SIZE", requires = "write_cache", help_heading = WRITING)]
    pub write_cache_max_file: u64,

    /// Uploads from the write cache in flight at once.
    #[arg(long, default_value_t = 32, value_name = "N", requires = "write_cache", help_heading = WRITING)]
    pub write_cache_uploads: usize,

    /// After unmount, wait at most this long for the write cache to empty before exiting (what
    /// is left stays for the next mount) [default: until it is empty].
    #[arg(long, value_parser = parse_seconds, value_name = "SECONDS", requires = "write_cache", help_heading = WRITING)]
    pub unmount_deadline: Option<Duration>,

    /// IBM retention policy buckets: give every new object this retention period, in seconds (-1: indefinite).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true, help_heading = WORM)]
    pub retention_period: Option<i64>,

    /// IBM retention policy buckets: put this legal hold on every new object.
    #[arg(long, value_name = "ID", help_heading = WORM)]
    pub legal_hold_id: Option<String>,

    /// Object Lock buckets: retention mode of every new object (needs --object-lock-retain-days).
    #[arg(long, value_parser = ["GOVERNANCE", "COMPLIANCE"], requires = "object_lock_retain_days", help_heading = WORM)]
    pub object_lock_mode: Option<String>,

    /// Object Lock buckets: retain every new object this many days.
    #[arg(long, value_name = "DAYS", requires = "object_lock_mode", help_heading = WORM)]
    pub object_lock_retain_days: Option<u32>,

    /// Allow shortening GOVERNANCE retention through user.s3.object-lock-retain-until-date.
    #[arg(long, help_heading = WORM)]
    pub bypass_governance_retention: bool,

    /// Directory for the multipart journal (uploads a crash left open are aborted at the next mount)
    /// [default: $XDG_STATE_HOME/cosmount or ~/.local/state/cosmount].
    #[arg(long, value_name = "DIR", help_heading = MOUNT)]
    pub state_dir: Option<PathBuf>,

    /// Log at debug level (same as --log-filter debug).
    #[arg(short, long, help_heading = LOGGING)]
    pub debug: bool,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "cosmount=debug" [env: COSMOUNT_LOG].
    #[arg(long, value_name = "FILTER", help_heading = LOGGING)]
    pub log_filter: Option<String>,

    /// Append the log to this file (its directory is created) instead of standard error.
    #[arg(long, value_name = "PATH", help_heading = LOGGING)]
    pub log_file: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (port 0: any free port, logged).
    #[arg(long, env = "COSMOUNT_METRICS_ADDR", value_name = "ADDR", help_heading = LOGGING)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

fn parse_mode(s: &str) -> Result<u16, String> {
    let v = u16::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| format!("{s:?} is not an octal mode"))?;
    if v > 0o7777 {
        return Err(format!("{s:?} is larger than 7777"));
    }
    Ok(v)
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    if s == "indefinite" {
        return Ok(Duration::from_secs(100 * 365 * 86_400));
    }
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds (or \"indefinite\")"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Cli {
    /// The mount point: the second argument, or the only one with `--all-buckets`.
    pub fn mountpoint_arg(&self) -> PathBuf {
        match (&self.mountpoint, self.all_buckets) {
            (Some(m), _) => m.clone(),
            (None, _) => PathBuf::from(&self.bucket),
        }
    }
}
