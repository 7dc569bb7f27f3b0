//! The `dphost` command. One file per subcommand under `cmd/`:
//! `run` follows the kernel and feeds the plugins, `check` validates a
//! plugin file, `ctl` talks to a running `dphost run`.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::init_logging(&cli);
    match cmd::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
