//! `MountConfig`: everything a mount needs, built by `cli/` and consumed by `run.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crate::fs::FsConfig;
use crate::store::s3::S3Settings;

/// The whole configuration of one mount.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// How to reach the bucket.
    pub s3: S3Settings,
    /// Filesystem settings (prefix, modes, TTLs).
    pub fs: FsConfig,
    /// What the command line says about credentials.
    pub creds: crate::creds::CredInputs,
    /// Network of a COS endpoint derived from the region.
    pub cos_network: crate::creds::endpoints::Network,
    /// Retention and legal-hold headers for every new object.
    pub upload_worm: crate::store::worm::WormHeaders,
    /// Disk tier of the block cache: directory and hard cap in bytes.
    pub disk_cache: Option<(PathBuf, u64)>,
    /// Where the multipart journal lives.
    pub state_dir: std::path::PathBuf,
    /// `--write-cache`: closes return once files are durable here.
    pub write_cache: Option<crate::fs::write_cache::WriteCacheConfig>,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// An account mount (`--all-buckets`), and how its mkdir makes buckets.
    pub all_buckets: Option<crate::store::buckets::NewBucket>,
    /// Mount read-only.
    pub read_only: bool,
    /// FUSE `allow_other`.
    pub allow_other: bool,
    /// FUSE `allow_root`.
    pub allow_root: bool,
    /// Mount over a non-empty directory.
    pub allow_non_empty: bool,
    /// FUSE worker threads.
    pub fuse_threads: usize,
    /// Time limit of the bucket check before mounting.
    pub check_timeout: Duration,
}
