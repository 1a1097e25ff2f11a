//! `shop keygen`.

use std::io::{self, Write};

use service_kit::auth::keys;

use crate::Error;
use crate::cli::KeygenArgs;

/// Generates a root key pair into `--out` (never replacing a private key) and prints where it
/// went and the public key.
pub fn run(args: &KeygenArgs) -> Result<(), Error> {
    let pair = keys::generate(&args.out)?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "private key: {} (mode 0600, keep it secret)",
        keys::private_key_path(&args.out).display()
    )?;
    writeln!(
        out,
        "public key:  {}",
        keys::public_key_path(&args.out).display()
    )?;
    writeln!(out, "{}", pair.public())?;
    Ok(())
}
