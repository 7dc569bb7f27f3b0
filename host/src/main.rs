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
        // The reader went away (`dphost ctl status | head -1`): what it
        // wanted was written, so this is no failure.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// True when the error comes from writing into a pipe whose reader closed.
fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
