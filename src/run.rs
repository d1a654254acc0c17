//! `run`: checks before mounting, the mount itself, signals, and a clean unmount.
//!
//! Order: check the mount point (exists, is a directory, is not a mount already, is empty),
//! check the bucket with one bounded ListObjectsV2 (so a typo, bad credentials or an unreachable
//! endpoint fail in seconds with a specific message, before the kernel sees anything), mount,
//! report readiness, serve until unmounted. SIGINT/SIGTERM unmount; `fusermount3 -u`/`umount`
//! end the session the same way; both exit 0.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::creds::{self, endpoints};

use crate::account::s3::{open_bucket, S3Buckets};
use crate::account::{AccountRoot, Mount};
use crate::config::MountConfig;
use crate::fuse::FuseFs;
use crate::store::s3::S3Store;
use crate::store::{ObjectStore, StoreError};

/// Mount and serve until unmounted.
pub fn run(config: MountConfig) -> Result<(), String> {
    crate::daemon::tune_allocator();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cosmount-io")
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    check_mountpoint(&config.mountpoint, config.allow_non_empty)?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let found =
        creds::resolve(&config.creds, &|k| std::env::var(k).ok(), home.as_deref()).map_err(|e| e.to_string())?;
    for w in &found.warnings {
        warn!("{w}");
    }
    info!(source = found.resolved.source(), "credentials");
    if let (Some(_), creds::Resolved::ApiKey { instance_id: None, .. }) = (&config.all_buckets, &found.resolved) {
        return Err(format!(
            "--all-buckets with an IBM API key (from {}) needs the COS service instance whose buckets \
                 to list and create: give --service-instance-id CRN (or IBM_SERVICE_INSTANCE_ID, or \
                 resource_instance_id in the COS credentials file)",
            found.resolved.source()
        ));
    }
    let mut s3 = config.s3.clone();
    if s3.endpoint_url.is_none() && found.resolved.is_ibm() {
        let Some(region) = s3.region.clone() else {
            return Err(format!(
                "the credentials from {} are IBM COS credentials: give the bucket's location with --region \
                 (such as us-south or eu-de) or its endpoint with --endpoint-url",
                found.resolved.source()
            ));
        };
        s3.endpoint_url = Some(endpoints::cos_endpoint(&region, config.cos_network)?);
    }
    let store = rt
        .block_on(S3Store::connect(&s3, &found.resolved))
        .map_err(|e| e.to_string())?;
    info!(
        max_memory = config.fs.max_memory,
        disk_cache = ?config.disk_cache,
        "memory budget and cache"
    );
    let budget = crate::budget::Budget::new(config.fs.max_memory);
    let fs = Arc::new(match &config.all_buckets {
        None => {
            rt.block_on(check_bucket(&store, &config, &found.looked_at))?;
            let disk_dir = config.disk_cache.as_ref().map(|(dir, _)| dir.clone());
            Mount::Bucket(rt.block_on(open_bucket(store, &config, budget, disk_dir))?)
        }
        Some(new_bucket) => {
            let what = format!("the buckets of {}", store.describe());
            let mut listed_buckets = Vec::new();
            let listed = check_reachable(&what, &config, &found.looked_at, async {
                listed_buckets = store.list_buckets().await?;
                Ok(())
            });
            rt.block_on(listed)?;
            let buckets = S3Buckets {
                base: store,
                config: config.clone(),
                new_bucket: new_bucket.clone(),
                budget,
            };
            let root = AccountRoot::new(
                Box::new(buckets),
                config.fs.presentation,
                config.fs.metadata_ttl,
                config.read_only,
            )
            .in_region(config.s3.region.clone())
            .listed(listed_buckets);
            Mount::Account(Arc::new(root))
        }
    });
    let fuse = FuseFs::new(fs.clone(), rt.handle().clone());
    let mut options = vec![
        fuser::MountOption::FSName(match config.all_buckets {
            Some(_) => "all-buckets".to_string(),
            None => crate::mount_opts::fsname(&config.s3.bucket, &config.fs.prefix),
        }),
        fuser::MountOption::Subtype("cosmount".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    options.push(if config.read_only {
        fuser::MountOption::RO
    } else {
        fuser::MountOption::RW
    });
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    fuse_config.acl = if config.allow_other {
        fuser::SessionACL::All
    } else if config.allow_root {
        fuser::SessionACL::RootAndOwner
    } else {
        fuser::SessionACL::Owner
    };
    fuse_config.n_threads = Some(config.fuse_threads);
    let mnt = config.mountpoint.display().to_string();
    let canonical = std::fs::canonicalize(&config.mountpoint).unwrap_or_else(|_| config.mountpoint.clone());
    let mut session = fuser::Session::new(fuse, &config.mountpoint, &fuse_config)
        .map_err(|e| format!("mounting on {mnt} failed: {e} (is fuse3 installed and /dev/fuse usable?)"))?;
    let mount_id = crate::mountinfo::mount_id(&canonical);
    match mount_id {
        Some(id) => fs.set_mount_id(id),
        None => warn!("cannot find this mount in /proc/self/mountinfo: a close stores only what was written"),
    }
    // The FUSE connection's number (its device), to end the session if the mount point is
    // detached (a lazy unmount) while files are still open.
    let connection = mount_id.and_then(crate::mountinfo::device_of);
    info!(
        bucket = config.s3.bucket.as_str(),
        prefix = config.fs.prefix.as_str(),
        mountpoint = mnt.as_str(),
        "mounted"
    );

    let unmounter = session.unmount_callable();
    let signal_mnt = mnt.clone();
    rt.spawn(async move {
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            error!("cannot install signal handlers; unmount with fusermount3 -u");
            return;
        };
        let mut unmounter = Some(unmounter);
        // Every signal is answered (a busy mount may be unmounted by a later one).
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if mount_id.is_some() && mount_id.and_then(crate::mountinfo::device_of).is_none() {
                // Detached already (`umount -l` with files open): nothing to unmount, and the
                // kernel keeps the connection until those files are closed. End it.
                info!(
                    signal = name,
                    "{signal_mnt} is no longer mounted (unmounted lazily?): ending the FUSE session"
                );
                crate::systemd::stopping();
                end_session(connection);
                continue;
            }
            info!(signal = name, "unmounting {signal_mnt}");
            crate::systemd::stopping();
            // The unmounter goes to a blocking thread and comes back for the next signal.
            let Some(mut u) = unmounter.take() else { continue };
            match tokio::task::spawn_blocking(move || {
                let result = u.unmount();
                (u, result)
            })
            .await
            {
                Ok((u, result)) => {
                    unmounter = Some(u);
                    if let Err(e) = result {
                        error!(
                            "unmounting {signal_mnt} failed: {e}; is a process still using it? try fusermount3 -u -z"
                        );
                    }
                }
                Err(e) => error!("unmounting {signal_mnt} failed: {e}"),
            }
        }
    });
    crate::daemon::notify_ready();
    session
        .run()
        .map_err(|e| format!("the FUSE session on {mnt} ended with an error: {e}"))?;
    info!(mountpoint = mnt.as_str(), "unmounted");
    // Files closed into the write cache go up before the daemon exits (or stay for the next
    // mount once --unmount-deadline has passed).
    rt.block_on(fs.drain());
    fs.flush_caches();
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// End a FUSE session whose mount point is gone: abort its connection through the fusectl file
/// system (the session then returns as after an unmount); where that is not possible, exit.
fn end_session(connection: Option<(u32, u32)>) {
    if let Some((0, minor)) = connection {
        let abort = format!("/sys/fs/fuse/connections/{minor}/abort");
        match std::fs::write(&abort, "1") {
            Ok(()) => return,
            Err(e) => warn!("cannot abort the FUSE connection through {abort}: {e}"),
        }
    }
    warn!("exiting: files still open on the detached mount lose what was not stored yet");
    std::process::exit(0);
}

/// The mount point must exist, be a directory, not be mounted on already, and be empty.
pub fn check_mountpoint(path: &Path, allow_non_empty: bool) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "mount point {shown} does not exist: create it with `mkdir -p {shown}`"
            ));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "{shown} is a FUSE mount whose daemon has gone (Transport endpoint is not connected): \
                 clean it up with `fusermount3 -u {shown}` and mount again"
            ));
        }
        Err(e) => return Err(format!("cannot use mount point {shown}: {e}")),
    };
    if !meta.is_dir() {
        return Err(format!("mount point {shown} is not a directory"));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve mount point {shown}: {e}"))?;
    if let Some(fstype) = crate::mountinfo::mounted_at(&canonical) {
        return Err(format!(
            "{shown} is already a mount point ({fstype}): unmount it first (`fusermount3 -u {shown}` or `umount {shown}`)"
        ));
    }
    let non_empty = std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(false);
    if non_empty && !allow_non_empty {
        return Err(format!(
            "mount point {shown} is not empty; its files would be hidden while mounted. \
             Use an empty directory, or pass --allow-non-empty"
        ));
    }
    Ok(())
}

/// One bounded listing of the mounted prefix, turned into a message that says what to do.
pub async fn check_bucket(store: &S3Store, config: &MountConfig, looked_at: &[String]) -> Result<(), String> {
    check_reachable(&store.describe(), config, looked_at, store.probe(&config.fs.prefix)).await
}

/// Run one bounded request (`check`) to `what` before mounting, and turn its failure into a
/// message that says what to do.
async fn check_reachable(
    what: &str,
    config: &MountConfig,
    looked_at: &[String],
    check: impl std::future::Future<Output = Result<(), StoreError>>,
) -> Result<(), String> {
    let secs = config.check_timeout.as_secs();
    let result = tokio::time::timeout(config.check_timeout, check).await;
    match result {
        Err(_) => Err(format!(
            "no answer from {what} within {secs} s: check --endpoint-url (scheme, host, port) and the network"
        )),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(match e {
            StoreError::NoSuchBucket { .. } => {
                format!("{what}: the bucket does not exist. Check the bucket name, --endpoint-url and --region")
            }
            StoreError::AccessDenied { message, .. } => format!(
                "access denied to {what} ({message}): check the credentials (environment, ~/.aws/credentials, \
                 --profile) and that they may list the bucket"
            ),
            StoreError::Credentials { message } => format!(
                "no usable credentials for {what}: {message}. Looked at, in order: {}. Set IBM_API_KEY_ID or \
                 AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, write ~/.bluemix/cos_credentials or ~/.aws/credentials, \
                 or pick a profile with --profile",
                looked_at.join("; ")
            ),
            StoreError::Unreachable { message, .. } | StoreError::TimedOut { message, .. } => format!(
                "cannot reach {what}: {message}. Check --endpoint-url (http:// or https://, host and port) \
                 and that the server is running"
            ),
            StoreError::BadResponse { message, .. } => {
                format!("{what} did not answer like an S3 server ({message}): is --endpoint-url an S3 endpoint?")
            }
            other => format!("checking {what} failed: {other}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_checks_name_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_mountpoint(dir.path(), false).is_ok());
        let missing = dir.path().join("nope");
        assert!(check_mountpoint(&missing, false)
            .unwrap_err()
            .contains("does not exist"));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        assert!(check_mountpoint(&file, false).unwrap_err().contains("not a directory"));
        assert!(check_mountpoint(dir.path(), false).unwrap_err().contains("not empty"));
        assert!(check_mountpoint(dir.path(), true).is_ok());
    }
}
