//! The programs the run depends on: building cosmount, the peers s3fs and rclone (installed with
//! apt-get when missing), bench-server on 127.0.0.1 with fresh credentials, the environment every
//! child gets (credentials, proxies, rclone's remote, s3fs's password file), the raw client, the
//! latency sanity check that the server is not stalling, and the switch of every client to the
//! delay proxy (`--latency MS`) and back, with the check that the proxy adds what it should.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use super::config::is_cosmount;
use super::error::{fatal, Error, Result};
use super::parse::{jget, peer_version};
use super::stats::num;
use super::{log, Ctx};

/// Whether a program is on the PATH (`command -v`).
pub fn have(program: &str) -> bool {
    if program.is_empty() {
        return false;
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(program))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The command a peer system runs as (`""` for an unknown system).
pub fn peer_cmd(sys: &str) -> &'static str {
    match sys {
        "s3fs" => "s3fs",
        "rclone" => "rclone",
        _ => "",
    }
}

/// A few random decimal digits (like bash's `$RANDOM`, 0..32767).
fn random15() -> u32 {
    let mut b = [0u8; 2];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    u32::from(u16::from_le_bytes(b) & 0x7fff)
}

/// Builds cosmount (release) in the repository; returns the binary's path.
pub fn build_cosmount(repo: &Path) -> Result<PathBuf> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(repo)
        .status()
        .map_err(Error::io("cargo build"))?;
    if !status.success() {
        return Err(fatal("cargo build --release of cosmount failed"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        repo.join(target)
    };
    let bin = target.join("release/cosmount");
    if !is_executable(&bin) {
        return Err(fatal(format!("cosmount binary not found at {}", bin.display())));
    }
    Ok(bin)
}

/// Whether this cosmount build has the option `opt` (`--max-memory`, `--write-cache`): whether
/// `cosmount --help` names it.
pub fn has_option(cosmount: &Path, opt: &str) -> bool {
    Command::new(cosmount)
        .arg("--help")
        .stderr(Stdio::null())
        .output()
        .map(|o| help_names_option(&String::from_utf8_lossy(&o.stdout), opt))
        .unwrap_or(false)
}

/// Whether a `--help` text names option `opt` (as itself, not as the start of a longer option).
pub fn help_names_option(help: &str, opt: &str) -> bool {
    help.match_indices(opt).any(|(i, _)| {
        let next = help[i + opt.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

/// A peer's version line for the report.
pub fn peer_version_of(sys: &str) -> String {
    let out = match sys {
        "s3fs" => Command::new("s3fs").arg("--version").stderr(Stdio::null()).output(),
        "rclone" => Command::new("rclone").arg("version").stderr(Stdio::null()).output(),
        _ => return String::new(),
    };
    out.map(|o| peer_version(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

impl Ctx {
    /// Installs the missing peers with apt-get; peers still missing afterwards are marked.
    pub fn install_peers(&mut self) {
        let missing: Vec<String> = self
            .cfg
            .systems
            .iter()
            .filter(|s| !is_cosmount(s) && !have(peer_cmd(s)))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        log(&format!("installing {} with apt-get", missing.join(" ")));
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0\n"))
            .unwrap_or(false);
        let apt_log = self.logs.join("apt.log");
        let script = r#"$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@""#;
        let ok = fs::File::create(&apt_log)
            .and_then(|f| {
                let e = f.try_clone()?;
                Command::new("bash")
                    .arg("-c")
                    .arg(script)
                    .arg("apt")
                    .args(&missing)
                    .env("SUDO", if root { "" } else { "sudo" })
                    .stdout(f)
                    .stderr(e)
                    .status()
            })
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let text = fs::read_to_string(&apt_log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail: String = lines[lines.len().saturating_sub(2)..]
                .iter()
                .map(|l| format!("{l} "))
                .collect();
            log(&format!("apt-get failed: {tail}"));
        }
        for s in missing {
            if !have(peer_cmd(&s)) {
                let why = format!("not installed (apt-get install {s} failed)");
                self.peer_err.insert(s, why);
            }
        }
    }

    /// Fresh credentials and the environment of every child (before the server starts).
    pub fn set_credentials(&mut self) {
        let key = format!("bench-{}-{}", std::process::id(), random15());
        let secret = format!("bench-secret-{}{}{}", random15(), random15(), random15());
        let proxy = |name: &str| match std::env::var(name).ok().filter(|v| !v.is_empty()) {
            Some(v) => format!("127.0.0.1,localhost,{v}"),
            None => "127.0.0.1,localhost".to_string(),
        };
        self.env = vec![
            ("AWS_ACCESS_KEY_ID".into(), key),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("NO_PROXY".into(), proxy("NO_PROXY")),
            ("no_proxy".into(), proxy("no_proxy")),
        ];
    }

    fn env_var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Starts bench-server on a free port of 127.0.0.1 serving `WORK/s3root`, waits (10 s) for its
    /// port file, and exports the endpoint, s3fs's password file and rclone's remote.
    pub fn start_server(&mut self) -> Result<()> {
        let port_file = self.work.join("port");
        let log_file = fs::File::create(self.logs.join("server.log")).map_err(Error::io("server.log"))?;
        let log_err = log_file.try_clone().map_err(Error::io("server.log"))?;
        let child = self
            .command(self.bench_bin.join("bench-server"))
            .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
            .arg(&port_file)
            .arg(self.work.join("s3root"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(Error::io("bench-server"))?;
        self.janitor.set_server(child);
        let mut port = String::new();
        for _ in 0..100 {
            port = fs::read_to_string(&port_file).unwrap_or_default().trim().to_string();
            if !port.is_empty() || !self.janitor.server_running() {
                break;
            }
            sleep(Duration::from_millis(100));
        }
        if port.is_empty() {
            return Err(fatal("bench-server did not start"));
        }
        self.endpoint = format!("http://127.0.0.1:{port}");
        log(&format!(
            "server: bench-server (s3s-fs 0.14.1, TCP_NODELAY) at {}",
            self.endpoint
        ));
        let (key, secret) = (self.env_var("AWS_ACCESS_KEY_ID"), self.env_var("AWS_SECRET_ACCESS_KEY"));
        let ep = self.endpoint.clone();
        for (k, v) in [
            ("BENCH_ENDPOINT_URL", ep.as_str()),
            ("RCLONE_CONFIG_BENCH_TYPE", "s3"),
            ("RCLONE_CONFIG_BENCH_PROVIDER", "Other"),
            ("RCLONE_CONFIG_BENCH_ENDPOINT", ep.as_str()),
            ("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", key.as_str()),
            ("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", secret.as_str()),
            ("RCLONE_CONFIG_BENCH_REGION", "us-east-1"),
        ] {
            self.env.push((k.to_string(), v.to_string()));
        }
        Ok(())
    }

    /// Points every client started from now on at `endpoint` (bench-server, or the delay proxy in
    /// front of it): the mounts' options, raw-client's `--endpoint-url`, rclone's remote.
    pub fn use_endpoint(&mut self, endpoint: &str) {
        self.endpoint = endpoint.to_string();
        for (k, v) in self.env.iter_mut() {
            if k == "BENCH_ENDPOINT_URL" || k == "RCLONE_CONFIG_BENCH_ENDPOINT" {
                *v = endpoint.to_string();
            }
        }
    }

    /// Writes s3fs's password file (mode 600) and rclone's empty config file.
    pub fn write_peer_configs(&self) -> Result<()> {
        let passwd = self.work.join("s3fs.passwd");
        let mut f = fs::File::create(&passwd).map_err(Error::io("s3fs.passwd"))?;
        writeln!(
            f,
            "{}:{}",
            self.env_var("AWS_ACCESS_KEY_ID"),
            self.env_var("AWS_SECRET_ACCESS_KEY")
        )
        .map_err(Error::io("s3fs.passwd"))?;
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o600)).map_err(Error::io("s3fs.passwd"))?;
        fs::write(self.work.join("rclone.conf"), "").map_err(Error::io("rclone.conf"))?;
        Ok(())
    }

    /// raw-client with these arguments: its stdout, or (when it fails) its stderr, which is also
    /// passed on to ours.
    pub fn raw(&self, args: &[&str]) -> std::result::Result<String, String> {
        self.raw_inner(args, true)
    }

    /// `raw` whose stderr is only returned (the bash harness sent it to a file it quoted from).
    pub fn raw_quiet(&self, args: &[&str]) -> std::result::Result<String, String> {
        self.raw_inner(args, false)
    }

    fn raw_inner(&self, args: &[&str], pass_stderr: bool) -> std::result::Result<String, String> {
        let out = self
            .command(self.bench_bin.join("raw-client"))
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("raw-client: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if pass_stderr {
            eprint!("{err}");
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err)
        }
    }

    /// raw-client for data set-up: a failure stops the run.
    pub fn raw_setup(&self, args: &[&str]) -> Result<String> {
        self.raw(args)
            .map_err(|e| fatal(format!("raw-client {} failed: {}", args.join(" "), e.trim_end())))
    }

    /// The 1-byte GET latency (500 GETs one after another): p50 and p99 in ms. A p50 of 10 ms or
    /// more means the server stalls (Nagle?): the run stops; 1 ms or more is a warning.
    pub fn latency_check(&self) -> Result<(String, String)> {
        let j = self.raw_setup(&["latency", "--bucket", "bench-raw", "--count", "500"])?;
        let (p50, p99) = (jget(&j, "p50_ms"), jget(&j, "p99_ms"));
        println!("sanity: 1-byte GET latency p50 {p50} ms, p99 {p99} ms (500 GETs one after another)");
        let ms = num(&p50);
        if ms.is_nan() || ms >= 10.0 {
            return Err(fatal(format!(
                "1-byte GETs take {p50} ms: the server is stalling (Nagle?), figures would be meaningless"
            )));
        }
        if ms >= 1.0 {
            log(&format!(
                "warning: 1-byte GET latency is not sub-millisecond ({p50} ms); the machine is busy"
            ));
        }
        Ok((p50, p99))
    }

    /// Once the clients use the delay proxy: the 1-byte GET latency through it (50 GETs one after
    /// another), p50 and p99 in ms. Below the round-trip the proxy adds nothing (a bug: the run
    /// stops); well above it (more than 5 ms or 50 %) is a warning that the machine is busy.
    pub fn proxy_check(&self, rtt_ms: u64) -> Result<(String, String)> {
        let j = self.raw_setup(&["latency", "--bucket", "bench-raw", "--count", "50"])?;
        let (p50, p99) = (jget(&j, "p50_ms"), jget(&j, "p99_ms"));
        println!(
            "sanity: 1-byte GET latency through the delay proxy ({rtt_ms} ms round-trip) p50 {p50} ms, p99 {p99} ms (50 GETs one after another)"
        );
        let (ms, rtt) = (num(&p50), rtt_ms as f64);
        if ms.is_nan() || ms < rtt {
            return Err(fatal(format!(
                "1-byte GETs through the delay proxy take {p50} ms, less than its {rtt_ms} ms round-trip"
            )));
        }
        if ms > rtt + (rtt / 2.0).max(5.0) {
            log(&format!(
                "warning: 1-byte GETs through the delay proxy take {p50} ms for a {rtt_ms} ms round-trip; the machine is busy"
            ));
        }
        Ok((p50, p99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_named_in_help() {
        let help =
            "Options:\n      --max-memory <SIZE>  budget\n      --write-cache <DIR>\n      --write-cache-size <N>\n";
        assert!(help_names_option(help, "--max-memory"));
        assert!(help_names_option(help, "--write-cache"));
        assert!(!help_names_option("      --write-cache-size <N>\n", "--write-cache"));
        assert!(help_names_option("--write-cache", "--write-cache"));
        assert!(!help_names_option("", "--write-cache"));
    }
}
