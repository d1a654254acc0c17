//! cosmount: mount an IBM Cloud Object Storage (or any S3-compatible) bucket as a folder.
//!
//! Layers, from the kernel down:
//! - [`fuse`]: the thin `fuser::Filesystem` adapter (replies and errno, nothing else);
//! - [`fs`]: the filesystem as async methods returning values ([`fs::S3Fs`]), testable without FUSE;
//! - [`store`]: the [`store::ObjectStore`] trait, with aws-sdk-s3 ([`store::s3`]) and in-memory
//!   ([`store::memory`]) implementations;
//! - [`cli`], [`mount_opts`], [`config`], [`run`], [`daemon`], [`systemd`], [`logging`], [`metrics`],
//!   [`progress`]: the command line (and mount(8)'s `-o` options), the process, and what it reports.
//!
//! Errors are [`error::FsError`] values carrying their errno from birth.

pub mod account;
pub mod budget;
pub mod cli;
pub mod config;
pub mod creds;
pub mod daemon;
pub mod describe;
pub mod error;
pub mod fs;
pub mod fuse;
pub mod logging;
pub mod metrics;
pub mod mount_opts;
pub mod mountinfo;
pub mod progress;
pub mod run;
pub mod store;
pub mod systemd;
