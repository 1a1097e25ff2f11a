//! `shop`: the launcher and operator's tool for the products and orders services.
//!
//! - `shop up` (the default): both services in one process, talking over loopback HTTP as in
//!   production, each with its own files under the data directory. `shop` alone takes `up`'s
//!   flags and environment variables (`shop --data-dir DIR`).
//! - `shop keygen --out DIR`: a root key pair as `DIR/private.key` (mode 0600) and
//!   `DIR/public.key`.
//! - `shop token mint | attenuate | inspect`: Biscuit tokens.
//! - `shop import products | orders FILE`: records checked with the service's own rules.
//!
//! A thin layer over [`service_kit::auth::keys`] and [`service_kit::auth::tokens`]: parsing,
//! reading inputs, printing. Errors go to stderr with exit status 1; usage errors exit with 2.

mod cli;
mod import;
mod keygen;
mod token;
mod up;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cli::{Cli, Command, ImportCommand, TokenCommand};

/// Any failure of a subcommand: printed as `error: {it}`, exit status 1.
type Error = Box<dyn std::error::Error>;

/// The services' allocator, for `shop up` (which runs both in this process).
#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

fn main() -> ExitCode {
    match run(parse().into_command()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. `up`'s environment variables are read at the top level too (for
/// `shop` without a subcommand), but an invalid one (say `SHOP_DURABILITY=bogus`) must not stop
/// `shop keygen` or `shop token` from running: for those, the top level is parsed again
/// without its environment variables.
fn parse() -> Cli {
    let error = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(error) => error,
    };
    if matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        let without_env = Cli::command().mut_args(|arg| arg.env(None));
        if let Ok(cli) = without_env
            .try_get_matches()
            .and_then(|matches| Cli::from_arg_matches(&matches))
            && cli.command.is_some()
        {
            return cli;
        }
    }
    error.exit()
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Up(args) => actix_web::rt::System::new().block_on(up::run(args)),
        Command::Keygen(args) => keygen::run(&args),
        Command::Token(TokenCommand::Mint(args)) => token::mint(&args),
        Command::Token(TokenCommand::Attenuate(args)) => token::attenuate(&args),
        Command::Token(TokenCommand::Inspect(args)) => token::inspect(&args),
        Command::Import(ImportCommand::Products(args)) => import::products(&args),
        Command::Import(ImportCommand::Orders(args)) => import::orders(&args),
    }
}
