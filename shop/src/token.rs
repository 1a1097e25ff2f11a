//! `shop token mint | attenuate | inspect`.

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use service_kit::auth::keys;
use service_kit::auth::tokens::{self, Inspection, Restriction, TokenSpec};

use crate::Error;
use crate::cli::{AttenuateArgs, InspectArgs, MintArgs};

/// Signs a new token and prints it alone on stdout.
pub fn mint(args: &MintArgs) -> Result<(), Error> {
    let root = keys::read_private(&args.private_key)
        .map_err(|e| format!("cannot read the private key: {e}"))?;
    let spec = TokenSpec {
        user: args.user.clone(),
        rights: args.rights.clone(),
        admin: args.admin,
        ttl: args.ttl,
    };
    let token = tokens::mint(&root, &spec).map_err(|e| format!("cannot mint the token: {e}"))?;
    print_token(&token)
}

/// Appends a restriction block and prints the new token alone on stdout.
pub fn attenuate(args: &AttenuateArgs) -> Result<(), Error> {
    let token = read_token(
        args.token.as_deref(),
        args.token_file.as_deref(),
        "--token TOKEN",
    )?;
    let restriction = Restriction {
        ttl: args.ttl,
        read_only: args.read_only,
        resource: args.resource.clone(),
    };
    let narrowed = tokens::attenuate(&token, &restriction)
        .map_err(|e| format!("cannot attenuate the token: {e}"))?;
    print_token(&narrowed)
}

/// Prints a token's blocks and revocation ids, and whether its signature verifies; fails if it
/// does not.
pub fn inspect(args: &InspectArgs) -> Result<(), Error> {
    let token = read_token(args.token.as_deref(), args.token_file.as_deref(), "TOKEN")?;
    let root = args
        .public_key
        .as_deref()
        .map(keys::read_public)
        .transpose()
        .map_err(|e| format!("cannot read the public key: {e}"))?;
    let seen = tokens::inspect(&token, root).map_err(|e| format!("cannot read the token: {e}"))?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&as_json(&seen))?)?;
    } else {
        write_text(&mut out, &seen, args.public_key.as_deref())?;
    }
    out.flush()?;
    match (&seen.signature, args.public_key.as_deref()) {
        (Some(Err(reason)), Some(path)) => Err(format!(
            "the token's signature does not verify against {}: {reason}",
            path.display()
        )
        .into()),
        _ => Ok(()),
    }
}

/// The token alone on a line, so that `TOKEN=$(shop token ...)` captures exactly it.
fn print_token(token: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    Ok(())
}

/// The token from the argument, else from `file`, else from stdin (unless stdin is a terminal,
/// where waiting for input would look like a hang). `argument` names the argument in messages.
fn read_token(given: Option<&str>, file: Option<&Path>, argument: &str) -> Result<String, Error> {
    let (text, origin) = if let Some(token) = given {
        (token.to_owned(), argument.to_owned())
    } else if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        (text, path.display().to_string())
    } else {
        let mut stdin = io::stdin().lock();
        if stdin.is_terminal() {
            return Err(format!(
                "no token: give {argument} or --token-file FILE, or pipe the token on stdin"
            )
            .into());
        }
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the token from stdin: {e}"))?;
        (text, "stdin".to_owned())
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("no token in {origin}").into());
    }
    Ok(token.to_owned())
}

/// The human-readable form: each block's Datalog, the revocation ids, the signature's status.
fn write_text(
    out: &mut impl Write,
    seen: &Inspection,
    public_key: Option<&Path>,
) -> io::Result<()> {
    for (i, source) in seen.blocks.iter().enumerate() {
        writeln!(out, "{}:", block_label(i))?;
        if source.trim().is_empty() {
            writeln!(out, "    (empty)")?;
        }
        for line in source.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "    {line}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "revocation ids:")?;
    for (i, id) in seen.revocation_ids.iter().enumerate() {
        writeln!(out, "    block {i}: {id}")?;
    }
    writeln!(out)?;
    match (&seen.signature, public_key) {
        (Some(Ok(())), Some(path)) => {
            writeln!(out, "signature: valid (verified with {})", path.display())
        }
        (Some(Err(reason)), Some(path)) => writeln!(
            out,
            "signature: INVALID (against {}: {reason})",
            path.display()
        ),
        _ => writeln!(
            out,
            "signature: not checked (give --public-key FILE or set SHOP_PUBLIC_KEY)"
        ),
    }
}

/// `block 0 (authority)`, `block 1`, ...
fn block_label(index: usize) -> String {
    if index == 0 {
        "block 0 (authority)".to_owned()
    } else {
        format!("block {index}")
    }
}

/// The same as [`write_text`] as a JSON object: `blocks` (Datalog sources, authority first),
/// `revocation_ids` (hex, one per block) and `signature` (`null` when not checked, else
/// `{"valid": bool}` plus `"error"` when invalid).
fn as_json(seen: &Inspection) -> serde_json::Value {
    let signature = match &seen.signature {
        None => serde_json::Value::Null,
        Some(Ok(())) => serde_json::json!({ "valid": true }),
        Some(Err(reason)) => serde_json::json!({ "valid": false, "error": reason }),
    };
    serde_json::json!({
        "blocks": seen.blocks,
        "revocation_ids": seen.revocation_ids,
        "signature": signature,
    })
}
