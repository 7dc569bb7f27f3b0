//! The command line: one `Command` enum, one dispatch.

mod check;
mod ctl;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dphost",
    version,
    about = "Follows the kernel's networking state and feeds every change to WebAssembly plugins"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the kernel's networking state and feed it to plugins.
    Run(run::RunArgs),
    /// Load and validate a plugin, run its describe and init, print what it says of itself.
    Check(check::CheckArgs),
    /// Talk to a running `dphost run` through its control API.
    Ctl(ctl::CtlArgs),
}

pub fn init_logging(_cli: &Cli) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Ctl(args) => ctl::ctl(args),
    }
}
