//! From the parsed command line to the mount's configuration: [`Cli::into_config`] checks what
//! clap cannot (the bucket name against S3's rules, URLs, part size, directories, option
//! combinations) and fills in [`MountConfig`] and the defaults that depend on the environment
//! (the state directory).

use std::path::PathBuf;
use std::time::Duration;

use super::Cli;
use crate::config::MountConfig;
use crate::creds::CredInputs;
use crate::fs::attr::Presentation;
use crate::fs::path::normalize_prefix;
use crate::fs::write::UploadConfig;
use crate::fs::FsConfig;
use crate::store::buckets::{check_bucket_name, check_location_constraint, check_root_key_crn, NewBucket};
use crate::store::s3::S3Settings;

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("cosmount");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/cosmount"),
        None => std::env::temp_dir().join("cosmount-state"),
    }
}

impl Cli {
    /// Turn the parsed command line into the mount's configuration.
    pub fn into_config(self) -> Result<MountConfig, String> {
        let mountpoint = self.mountpoint_arg();
        let (bucket, prefix) = if self.all_buckets {
            // `all-buckets` is the source that mount(8) and fstab pass (and `mount` shows).
            if self.mountpoint.is_some() && self.bucket != "all-buckets" {
                return Err(format!(
                    "--all-buckets mounts every bucket: give only the mount point (`cosmount --all-buckets {}`)",
                    mountpoint.display()
                ));
            }
            if self.retention_period.is_some() || self.legal_hold_id.is_some() || self.object_lock_mode.is_some() {
                return Err(
                    "--retention-period, --legal-hold-id and --object-lock-mode apply to one bucket: \
                            mount that bucket on its own to use them"
                        .into(),
                );
            }
            (String::new(), String::new())
        } else {
            let (bucket, prefix) = match self.bucket.split_once(':') {
                Some((b, p)) => (b.to_string(), normalize_prefix(p)),
                None => (self.bucket.clone(), String::new()),
            };
            check_bucket_name(&bucket)?;
            if self.location_constraint.is_some() || self.kp_root_key_crn.is_some() {
                return Err(
                    "--location-constraint and --kp-root-key-crn are for buckets made by mkdir: \
                            they need --all-buckets"
                        .into(),
                );
            }
            (bucket, prefix)
        };
        if let Some(lc) = &self.location_constraint {
            check_location_constraint(lc)?;
        }
        if let Some(crn) = &self.kp_root_key_crn {
            check_root_key_crn(crn)?;
        }
        let new_bucket = NewBucket {
            location_constraint: self.location_constraint.clone(),
            kp_root_key_crn: self.kp_root_key_crn.clone(),
            kp_algorithm: self.kp_algorithm.clone(),
        };
        for (flag, url) in [
            ("--endpoint-url", &self.endpoint_url),
            ("--iam-endpoint", &self.iam_endpoint),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("{flag} {url:?} must start with http:// or https://"));
                }
            }
        }
        if self.part_size < 5 || self.part_size > 5 * 1024 {
            return Err(format!(
                "--part-size {} is outside S3's limits (5 to 5120 MiB)",
                self.part_size
            ));
        }
        if self.upload_concurrency == 0 {
            return Err("--upload-concurrency must be at least 1".into());
        }
        let staging_dir = self.staging_dir.clone().unwrap_or_else(std::env::temp_dir);
        if !staging_dir.is_dir() {
            return Err(format!("--staging-dir {} is not a directory", staging_dir.display()));
        }
        if let Some(id) = &self.legal_hold_id {
            crate::store::worm::check_hold_id(id)?;
        }
        if self.retention_period.is_some_and(|p| p < -1) {
            return Err("--retention-period must be a number of seconds, or -1 for indefinite".into());
        }
        if self.object_lock_retain_days == Some(0) {
            return Err("--object-lock-retain-days must be at least 1".into());
        }
        if self.write_cache_uploads == 0 {
            return Err("--write-cache-uploads must be at least 1".into());
        }
        if let Some(dir) = &self.write_cache {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("--write-cache {}: cannot create it: {e}", dir.display()))?;
        }
        if self.fuse_threads == 0 {
            return Err("--fuse-threads must be at least 1".into());
        }
        let uid = self.uid.unwrap_or_else(crate::daemon::current_uid);
        let gid = self.gid.unwrap_or_else(crate::daemon::current_gid);
        Ok(MountConfig {
            s3: S3Settings {
                bucket,
                endpoint_url: self.endpoint_url,
                region: self.region,
                force_path_style: self.force_path_style,
                profile: self.profile.clone(),
                max_attempts: self.max_attempts.max(1),
                attempt_timeout: Duration::from_secs(self.request_timeout.max(1)),
                timeout: Duration::from_secs(self.timeout.max(1)),
                max_connections: self.max_connections.max(1),
                ..S3Settings::default()
            },
            fs: FsConfig {
                prefix,
                presentation: Presentation {
                    uid,
                    gid,
                    file_mode: self.file_mode,
                    dir_mode: self.dir_mode,
                },
                metadata_ttl: self.metadata_ttl,
                listing_attributes: self.listing_attributes,
                max_memory: self.max_memory,
                metadata_concurrency: self.max_connections.max(1),
                bypass_governance: self.bypass_governance_retention,
                read_only: self.read_only,
                upload: UploadConfig {
                    part_size: self.part_size * 1024 * 1024,
                    concurrency: self.upload_concurrency,
                    staging_dir,
                },
                ..FsConfig::default()
            },
            creds: CredInputs {
                api_key_file: self.api_key_file,
                cos_credentials: self.cos_credentials,
                profile: self.profile.clone(),
                iam_endpoint: self.iam_endpoint,
                service_instance_id: self.service_instance_id,
            },
            cos_network: self.cos_network,
            disk_cache: self.cache_dir.clone().map(|d| (d, self.max_cache_size)),
            state_dir: self.state_dir.clone().unwrap_or_else(default_state_dir),
            write_cache: self
                .write_cache
                .clone()
                .map(|dir| crate::fs::write_cache::WriteCacheConfig {
                    dir,
                    max_size: self.write_cache_size,
                    max_file: self.write_cache_max_file,
                    max_files: crate::fs::write_cache::DEFAULT_MAX_FILES,
                    uploads: self.write_cache_uploads,
                    drain_deadline: self.unmount_deadline,
                }),
            upload_worm: crate::store::worm::WormHeaders {
                lock_mode: self.object_lock_mode,
                lock_until: self
                    .object_lock_retain_days
                    .map(|d| std::time::SystemTime::now() + Duration::from_secs(u64::from(d) * 86_400)),
                cos_period: self.retention_period,
                cos_hold_id: self.legal_hold_id,
            },
            mountpoint,
            all_buckets: self.all_buckets.then_some(new_bucket),
            read_only: self.read_only,
            allow_other: self.allow_other,
            allow_root: self.allow_root,
            allow_non_empty: self.allow_non_empty,
            fuse_threads: self.fuse_threads,
            check_timeout: Duration::from_secs(self.connect_timeout.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<MountConfig, String> {
        let mut v = vec!["cosmount"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).map_err(|e| e.to_string())?.into_config()
    }

    #[test]
    fn bucket_prefix_modes_and_validation() {
        let c = parse(&[
            "my-bucket:some/prefix",
            "/mnt",
            "--file-mode",
            "600",
            "--dir-mode",
            "0o700",
        ])
        .expect("ok");
        assert_eq!(c.s3.bucket, "my-bucket");
        assert_eq!(c.fs.prefix, "some/prefix/");
        assert_eq!(
            (c.fs.presentation.file_mode, c.fs.presentation.dir_mode),
            (0o600, 0o700)
        );
        assert!(parse(&["Bad_Bucket", "/mnt"])
            .unwrap_err()
            .contains("invalid bucket name"));
        assert!(parse(&["ab", "/mnt"]).unwrap_err().contains("3 to 63"));
        assert!(parse(&["bucket", "/mnt", "--endpoint-url", "localhost:9000"])
            .unwrap_err()
            .contains("http://"));
        assert!(parse(&["bucket", "/mnt", "--file-mode", "9"])
            .unwrap_err()
            .contains("octal"));
        assert!(parse(&["bucket", "/mnt", "--allow-other", "--allow-root"]).is_err());
        assert!(parse(&["bucket", "/mnt", "--part-size", "4"])
            .unwrap_err()
            .contains("5 to 5120"));
        assert!(parse(&["bucket", "/mnt", "--staging-dir", "/nonexistent"])
            .unwrap_err()
            .contains("not a directory"));
        let c = parse(&["--all-buckets", "/mnt/cos", "--location-constraint", "us-south-cold"]).expect("ok");
        assert_eq!(c.mountpoint, std::path::PathBuf::from("/mnt/cos"));
        let new = c.all_buckets.expect("an account mount");
        assert_eq!(new.location_constraint.as_deref(), Some("us-south-cold"));
        assert!(parse(&["--all-buckets", "b", "/mnt"])
            .unwrap_err()
            .contains("only the mount point"));
        assert!(parse(&["bucket", "/mnt", "--location-constraint", "us-south-cold"])
            .unwrap_err()
            .contains("need --all-buckets"));
        assert!(parse(&["--all-buckets", "/mnt", "--kp-root-key-crn", "nope"])
            .unwrap_err()
            .contains("not a Key Protect root key CRN"));
        assert!(parse(&["--all-buckets", "/mnt", "--retention-period", "60"])
            .unwrap_err()
            .contains("apply to one bucket"));
        assert!(
            parse(&["bucket"]).is_err(),
            "a single-bucket mount needs its mount point"
        );
        let c = parse(&["bucket", "/mnt", "--metadata-ttl", "indefinite"]).expect("ok");
        assert!(c.fs.metadata_ttl > Duration::from_secs(86_400 * 365));
    }
}
