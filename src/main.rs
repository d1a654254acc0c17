//! The `cosmount` binary: expand mount(8)'s `-o` options, parse the command line, set up logging
//! (and metrics), mount.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use cosmount::cli::Cli;
use cosmount::logging::{self, Destination};
use cosmount::mount_opts;

fn main() -> ExitCode {
    let args = match mount_opts::expand(std::env::args_os().collect(), &Cli::command()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if let Err(e) = mount_opts::check_mountpoint_arg(&cli.mountpoint_arg()) {
        eprintln!("cosmount: {e}");
        return ExitCode::from(2);
    }
    let background = cli.foreground && cosmount::daemon::is_background_daemon();
    let dest = match logging::init(
        cli.log_filter.as_deref(),
        cli.debug,
        cli.log_file.as_deref(),
        background,
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(2);
        }
    };
    let foreground = cli.foreground;
    let metrics_addr = cli.metrics_addr;
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
    let fail = |e: &str| {
        if dest == Destination::File {
            tracing::error!("{e}");
        }
        eprintln!("cosmount: {e}");
        ExitCode::FAILURE
    };
    if let Some(addr) = metrics_addr {
        if let Err(e) = cosmount::metrics::serve(addr) {
            return fail(&e.to_string());
        }
    }
    match cosmount::run::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
