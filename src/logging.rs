//! Logging: tracing with an EnvFilter taken from `--log-filter`, `--debug` or `COSMOUNT_LOG`
//! (in that order; default `warn,aws_config=error,cosmount=info`), written to stderr or appended to `--log-file`.

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Where the log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    File,
}

/// Install the global subscriber.
pub fn init(filter: Option<&str>, debug: bool, file: Option<&Path>) -> Result<Destination, String> {
    let spec = match (filter, debug) {
        (Some(f), _) => f.to_string(),
        (None, true) => "debug".to_string(),
        (None, false) => {
            std::env::var("COSMOUNT_LOG").unwrap_or_else(|_| "warn,aws_config=error,cosmount=info".to_string())
        }
    };
    let env_filter = EnvFilter::try_new(&spec).map_err(|e| format!("invalid log filter {spec:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_target(false);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(f))
                .try_init()
                .map_err(|e| e.to_string())?;
            Ok(Destination::File)
        }
        None => {
            builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .try_init()
                .map_err(|e| e.to_string())?;
            Ok(Destination::Stderr)
        }
    }
}
