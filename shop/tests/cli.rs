//! The `shop` binary end to end: key files, minting, attenuating and inspecting tokens, and that
//! the tokens it prints are the ones the services' authenticator accepts or refuses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use service_kit::auth::keys;
use service_kit::{AuthError, Authenticator, Operation};

/// What a run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The binary, with no key paths inherited from the environment running the tests.
fn shop(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shop"));
    cmd.args(args)
        .env_remove("SHOP_PRIVATE_KEY")
        .env_remove("SHOP_PUBLIC_KEY")
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// Runs `cmd`, feeding it `stdin` (or an empty stdin).
fn run(cmd: &mut Command, stdin: Option<&str>) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `shop ARGS` with an empty stdin.
fn shop_run(args: &[&str]) -> Run {
    run(&mut shop(args), None)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `shop keygen --out DIR/NAME`, asserting success; returns DIR/NAME.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let r = shop_run(&["keygen", "--out", path(&out)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    out
}

/// The token a successful `shop token ...` printed: it must be alone on stdout, one line.
fn printed_token(r: &Run) -> String {
    assert_eq!(r.code, Some(0), "{r:?}");
    let token = r.stdout.strip_suffix('\n').expect("a trailing newline");
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{r:?}"
    );
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=".contains(c)),
        "not base64url: {token}"
    );
    token.to_owned()
}

/// `shop token mint --private-key KEYS/private.key --user alice EXTRA...`, asserting success.
fn mint(keys_dir: &Path, extra: &[&str]) -> String {
    let private = keys::private_key_path(keys_dir);
    let mut args = vec![
        "token",
        "mint",
        "--private-key",
        path(&private),
        "--user",
        "alice",
    ];
    args.extend_from_slice(extra);
    printed_token(&shop_run(&args))
}

fn authenticator(keys_dir: &Path) -> Authenticator {
    let public = keys::read_public(&keys::public_key_path(keys_dir)).unwrap();
    Authenticator::new(public, [])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// keygen writes a private key readable only by its owner and the matching public key, and
/// prints both paths and the public key.
#[test]
fn keygen_writes_both_key_files_with_a_private_0600_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let r = shop_run(&["keygen", "--out", path(&out)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let private = keys::private_key_path(&out);
    let public = keys::public_key_path(&out);
    let pair = keys::read_private(&private).unwrap();
    let public_key = keys::read_public(&public).unwrap();
    assert_eq!(pair.public(), public_key);
    assert!(r.stdout.contains(path(&private)), "{r:?}");
    assert!(r.stdout.contains(path(&public)), "{r:?}");
    assert!(r.stdout.contains(&public_key.to_string()), "{r:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

/// A second keygen into the same directory fails with exit 1 and a clear message, leaving the
/// existing private key as it was.
#[test]
fn keygen_refuses_to_overwrite_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = keygen(dir.path(), "keys");
    let before = std::fs::read(keys::private_key_path(&out)).unwrap();
    let r = shop_run(&["keygen", "--out", path(&out)]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("already exists"), "{r:?}");
    assert!(r.stderr.contains("private.key"), "{r:?}");
    assert_eq!(std::fs::read(keys::private_key_path(&out)).unwrap(), before);
}

/// A minted token inspects to its user, rights, admin fact and expiry check, and its signature
/// verifies against its own public key but not against another key pair's (exit 1).
#[test]
fn minted_token_inspects_and_verifies_only_against_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let theirs = keygen(dir.path(), "theirs");
    let token = mint(
        &ours,
        &[
            "--right",
            "products:read",
            "--right",
            "orders:write",
            "--admin",
            "--ttl",
            "1h",
        ],
    );

    let ours_public = keys::public_key_path(&ours);
    let r = shop_run(&[
        "token",
        "inspect",
        &token,
        "--public-key",
        path(&ours_public),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    for expected in [
        "block 0 (authority)",
        r#"user("alice")"#,
        r#"right("products", "read")"#,
        r#"right("orders", "write")"#,
        "admin(true)",
        "check if time($t), $t <=",
        "revocation ids",
        "signature: valid",
    ] {
        assert!(r.stdout.contains(expected), "{expected} in {r:?}");
    }
    assert!(!r.stdout.contains("block 1"), "{r:?}");
    let ids: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("block 0: "))
        .collect();
    assert_eq!(ids.len(), 1, "{r:?}");
    assert!(ids[0].chars().all(|c| c.is_ascii_hexdigit()), "{ids:?}");

    let theirs_public = keys::public_key_path(&theirs);
    let r = shop_run(&[
        "token",
        "inspect",
        &token,
        "--public-key",
        path(&theirs_public),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("signature: INVALID"), "{r:?}");
    assert!(r.stderr.contains("does not verify"), "{r:?}");
}

/// `--json` prints the same as one JSON object; the public key can come from SHOP_PUBLIC_KEY and
/// the token from --token-file.
#[test]
fn inspect_json_reports_blocks_revocation_ids_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let theirs = keygen(dir.path(), "theirs");
    let token = mint(&ours, &["--right", "products:read"]);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();

    let inspect = |keys_dir: &Path| {
        run(
            shop(&[
                "token",
                "inspect",
                "--json",
                "--token-file",
                path(&token_file),
            ])
            .env("SHOP_PUBLIC_KEY", keys::public_key_path(keys_dir)),
            None,
        )
    };
    let r = inspect(&ours);
    assert_eq!(r.code, Some(0), "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let blocks = json["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{json}");
    assert!(
        blocks[0]
            .as_str()
            .unwrap()
            .contains(r#"right("products", "read")"#),
        "{json}"
    );
    assert_eq!(
        json["revocation_ids"].as_array().unwrap().len(),
        1,
        "{json}"
    );
    assert_eq!(json["signature"]["valid"], true, "{json}");

    let r = inspect(&theirs);
    assert_eq!(r.code, Some(1), "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["signature"]["valid"], false, "{json}");
    assert!(json["signature"]["error"].is_string(), "{json}");
}

/// `attenuate --read-only` reads the token from stdin and prints a token with a second block
/// holding `check if operation("read")`, still signed by the root key.
#[test]
fn attenuate_read_only_from_stdin_adds_a_read_check_block() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let token = mint(&ours, &["--right", "products:write"]);
    let narrowed = printed_token(&run(
        &mut shop(&["token", "attenuate", "--read-only"]),
        Some(&format!("{token}\n")),
    ));
    assert_ne!(narrowed, token);

    let public = keys::public_key_path(&ours);
    let r = run(
        &mut shop(&["token", "inspect", "--public-key", path(&public)]),
        Some(&narrowed),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let block1 = r
        .stdout
        .split("block 1:")
        .nth(1)
        .unwrap_or_else(|| panic!("no block 1 in {r:?}"));
    assert!(block1.contains(r#"check if operation("read")"#), "{r:?}");
    assert!(r.stdout.contains("signature: valid"), "{r:?}");
}

/// `attenuate --token ... --resource products --ttl 10m` adds a resource check and an expiry
/// check in the new block.
#[test]
fn attenuate_restricts_resource_and_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let token = mint(&ours, &["--admin"]);
    let narrowed = printed_token(&shop_run(&[
        "token",
        "attenuate",
        "--token",
        &token,
        "--resource",
        "products",
        "--ttl",
        "10m",
    ]));
    let r = shop_run(&["token", "inspect", &narrowed]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let block1 = r.stdout.split("block 1:").nth(1).unwrap();
    assert!(block1.contains(r#"check if resource("products")"#), "{r:?}");
    assert!(block1.contains("check if time($t), $t <="), "{r:?}");
    assert!(r.stdout.contains("signature: not checked"), "{r:?}");

    let auth = authenticator(&ours);
    assert!(
        auth.authorize(Some(&bearer(&narrowed)), "products", Operation::Write)
            .is_ok()
    );
    assert!(matches!(
        auth.authorize(Some(&bearer(&narrowed)), "orders", Operation::Read),
        Err(AuthError::Forbidden { .. })
    ));
}

/// A right whose operation is neither read nor write is a usage error naming the value.
#[test]
fn a_bad_right_is_rejected_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let private = keys::private_key_path(&ours);
    let r = shop_run(&[
        "token",
        "mint",
        "--private-key",
        path(&private),
        "--user",
        "alice",
        "--right",
        "products:delete",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("products:delete"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// A TTL with an unknown unit is a usage error naming the value, for mint and for attenuate.
#[test]
fn a_bad_ttl_is_rejected_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let private = keys::private_key_path(&ours);
    let r = shop_run(&[
        "token",
        "mint",
        "--private-key",
        path(&private),
        "--user",
        "alice",
        "--admin",
        "--ttl",
        "5w",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("5w"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    let token = mint(&ours, &["--admin"]);
    let r = shop_run(&["token", "attenuate", "--token", &token, "--ttl", "5w"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("5w"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// Minting a token that grants nothing (no --right, no --admin) is refused.
#[test]
fn mint_without_rights_or_admin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let private = keys::private_key_path(&ours);
    let r = shop_run(&[
        "token",
        "mint",
        "--private-key",
        path(&private),
        "--user",
        "alice",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("--right") && r.stderr.contains("--admin"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// Without a token (empty stdin) or with a token that is not a Biscuit, attenuate and inspect
/// fail with exit 1 and say why.
#[test]
fn missing_or_garbage_tokens_fail_clearly() {
    let r = shop_run(&["token", "inspect"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no token"), "{r:?}");
    let r = shop_run(&["token", "attenuate", "--read-only"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no token"), "{r:?}");
    let r = shop_run(&["token", "inspect", "not-a-token"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot read the token"), "{r:?}");
    let r = shop_run(&[
        "token",
        "attenuate",
        "--read-only",
        "--token",
        "not-a-token",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot attenuate the token"), "{r:?}");
}

/// SHOP_PRIVATE_KEY stands in for --private-key, and the token it mints is accepted by the
/// services' authenticator for its right and refused for others.
#[test]
fn mint_takes_the_private_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let token = printed_token(&run(
        shop(&["token", "mint", "--user", "bob", "--right", "orders:read"])
            .env("SHOP_PRIVATE_KEY", keys::private_key_path(&ours)),
        None,
    ));
    let auth = authenticator(&ours);
    let caller = auth
        .authorize(Some(&bearer(&token)), "orders", Operation::Read)
        .unwrap();
    assert_eq!(caller.user, "bob");
    assert!(!caller.admin);
    assert!(matches!(
        auth.authorize(Some(&bearer(&token)), "orders", Operation::Write),
        Err(AuthError::Forbidden { .. })
    ));
}

/// A token attenuated with --read-only is refused for a write (403) though the original token
/// grants it, and still allowed to read.
#[test]
fn read_only_attenuation_is_enforced_by_the_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let token = mint(
        &ours,
        &["--right", "products:read", "--right", "products:write"],
    );
    let narrowed = printed_token(&run(
        &mut shop(&["token", "attenuate", "--read-only"]),
        Some(&token),
    ));
    let auth = authenticator(&ours);
    assert!(
        auth.authorize(Some(&bearer(&token)), "products", Operation::Write)
            .is_ok()
    );
    assert!(
        auth.authorize(Some(&bearer(&narrowed)), "products", Operation::Read)
            .is_ok()
    );
    assert!(matches!(
        auth.authorize(Some(&bearer(&narrowed)), "products", Operation::Write),
        Err(AuthError::Forbidden { .. })
    ));
}

/// A token minted with --ttl 1s is refused as expired two seconds later, while the same token
/// with --ttl 1h is still accepted then.
#[test]
fn a_one_second_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "ours");
    let short = mint(&ours, &["--right", "products:read", "--ttl", "1s"]);
    let long = mint(&ours, &["--right", "products:read", "--ttl", "1h"]);
    std::thread::sleep(Duration::from_secs(2));
    let auth = authenticator(&ours);
    assert!(
        auth.authorize(Some(&bearer(&long)), "products", Operation::Read)
            .is_ok()
    );
    assert_eq!(
        auth.authorize(Some(&bearer(&short)), "products", Operation::Read),
        Err(AuthError::Expired)
    );
}

/// `up`'s settings are also read at the top level (for `shop` alone), but a bad one in the
/// environment does not stop other subcommands; on the command line it conflicts with them.
#[test]
fn up_settings_do_not_get_in_the_way_of_other_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let r = run(
        shop(&["keygen", "--out", path(&out)])
            .env("SHOP_DURABILITY", "sometimes")
            .env("SHOP_LOG_FORMAT", "fancy")
            .env("SHOP_DATA_DIR", dir.path().join("data")),
        None,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(keys::private_key_path(&out).is_file());

    let r = shop_run(&["--durability", "never", "token", "inspect"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("cannot be used with"), "{r:?}");
}
