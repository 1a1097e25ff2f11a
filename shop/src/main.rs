//! `shop`: the launcher and operator's tool for the products and orders services.
//!
//! - `shop up` (the default): both services in one process, talking over loopback HTTP as in
//!   production, each with its own files under the data directory.
//! - `shop keygen --out DIR`: a root key pair as `DIR/private.key` (mode 0600) and
//!   `DIR/public.key`.
//! - `shop token mint | attenuate | inspect`: Biscuit tokens.
//!
//! A thin layer over [`service_kit::auth::keys`] and [`service_kit::auth::tokens`]: parsing,
//! reading inputs, printing. Errors go to stderr with exit status 1; usage errors exit with 2.

mod cli;
mod keygen;
mod token;
mod up;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, TokenCommand};

/// Any failure of a subcommand: printed as `error: {it}`, exit status 1.
type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Up(cli::UpArgs::default()));
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Up(args) => actix_web::rt::System::new().block_on(up::run(args)),
        Command::Keygen(args) => keygen::run(&args),
        Command::Token(TokenCommand::Mint(args)) => token::mint(&args),
        Command::Token(TokenCommand::Attenuate(args)) => token::attenuate(&args),
        Command::Token(TokenCommand::Inspect(args)) => token::inspect(&args),
    }
}
