//! The `cosmount` binary: parse the command line, set up logging, mount.

use std::process::ExitCode;

use clap::Parser;
use cosmount::cli::Cli;
use cosmount::logging::{self, Destination};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dest = match logging::init(cli.log_filter.as_deref(), cli.debug, cli.log_file.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(2);
        }
    };
    let foreground = cli.foreground;
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(2);
        }
    };
    if !foreground {
        return cosmount::daemon::spawn_background();
    }
    match cosmount::run::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if dest == Destination::File {
                tracing::error!("{e}");
            }
            eprintln!("cosmount: {e}");
            ExitCode::FAILURE
        }
    }
}
