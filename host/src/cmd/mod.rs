//! The command line: one `Command` enum, one dispatch.

mod check;
mod ctl;
mod run;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "dphost",
    version,
    about = "Follows the kernel's networking state and feeds every change to WebAssembly plugins"
)]
pub struct Cli {
    /// Log lines as text, or as JSON objects (one per line, with the
    /// plugin's name as a field on every plugin line). `RUST_LOG` filters.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the kernel's networking state and feed it to plugins.
    Run(run::RunArgs),
    /// Load and validate a plugin, run its describe and init, print what it says of itself.
    Check(check::CheckArgs),
    /// Talk to a running `dphost run` through its control API.
    Ctl(ctl::CtlArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => subscriber
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => subscriber.json().init(),
    }
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Ctl(args) => ctl::ctl(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dphost", &mut std::io::stdout());
            Ok(())
        }
    }
}
