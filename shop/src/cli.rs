//! The command line: what each subcommand and flag means. `--help` is generated from these doc
//! comments, so they are the user documentation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use service_kit::auth::tokens::{Right, parse_ttl};

/// The shop: runs the products and orders services (`shop up`, the default), and makes root
/// keys and Biscuit tokens for them.
///
/// Without a subcommand it runs `shop up`, taking `up`'s flags and environment variables
/// (`shop --data-dir DIR` is `shop up --data-dir DIR`).
#[derive(Debug, Parser)]
#[command(name = "shop", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: `up`).
    #[command(subcommand)]
    pub command: Option<Command>,
    // `up`'s flags, used when no subcommand is given (they conflict with any subcommand).
    #[command(flatten)]
    pub up: UpArgs,
}

impl Cli {
    /// The subcommand to run: the one given, else `up` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Up(self.up))
    }
}

/// The subcommands. Each variant's doc comment is its summary in `shop --help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run both services in this process on their default addresses, with data under
    /// ./data, a development key pair and an admin token created on first run (the default).
    Up(UpArgs),
    /// Generate a root key pair: DIR/private.key (mode 0600) and DIR/public.key.
    Keygen(KeygenArgs),
    /// Mint, attenuate and inspect Biscuit tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Import records into a service's store (it must be stopped), each checked with the
    /// service's own rules: nothing is written while any is refused, unless --skip-invalid.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `shop import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Products: checked as POST /products checks them (TinyDB's `uuid`, `name` and `price`,
    /// a numeric price read as the decimal it spells), into DATA_DIR/products/.
    Products(ImportArgs),
    /// Orders: TinyDB's `uuid`, `product_uuid` and `quantity`, each line checked as POST
    /// /orders checks it and priced from the products store (import products first), into
    /// DATA_DIR/orders/. Imported orders take no stock.
    Orders(ImportOrdersArgs),
}

/// `shop import products`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A JSON array (`store-actor export` output, or plain objects) or a TinyDB file; `-` reads
    /// standard input.
    pub file: PathBuf,
    /// The data directory `shop up` uses.
    #[arg(
        long,
        value_name = "DIR",
        env = "SHOP_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Only this table of a TinyDB file (default: every table).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Import the valid records and skip the refused ones (each reported, and counted).
    #[arg(long)]
    pub skip_invalid: bool,
}

/// `shop import orders`.
#[derive(Debug, Clone, Args)]
pub struct ImportOrdersArgs {
    #[command(flatten)]
    pub import: ImportArgs,
    /// Who owns the imported TinyDB orders (they name no one).
    #[arg(long, value_name = "USER", default_value = "migrated")]
    pub owner: String,
}

/// `shop up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Data directory: keys/ (root key pair, orders' service token), products/, orders/ and
    /// admin.token.
    #[arg(
        long,
        value_name = "DIR",
        env = "SHOP_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Address of the products service (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub products_addr: String,
    /// Address of the orders service (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8082")]
    pub orders_addr: String,
    /// When writes count as done: always (fsync before answering), interval:MS or never.
    #[arg(long, env = "SHOP_DURABILITY", default_value = "always")]
    pub durability: store_actor::Durability,
    /// Log format on stderr.
    #[arg(long, env = "SHOP_LOG_FORMAT", value_enum, default_value_t = service_kit::telemetry::LogFormat::Pretty)]
    pub log_format: service_kit::telemetry::LogFormat,
    /// Where the stores keep their records: in-memory (all in RAM) or index (a key directory in
    /// RAM, records read from the files through a cache of --cache-mb per store).
    #[arg(long, env = "SHOP_MEMORY", value_enum, default_value_t = service_kit::config::MemoryMode::InMemory)]
    pub memory: service_kit::config::MemoryMode,
    /// With --memory index: MiB of parsed records cached per store.
    #[arg(long, env = "SHOP_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
}

/// `shop keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory to write private.key and public.key into (created if missing). An existing
    /// private.key there is never overwritten.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `shop token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a new token with the root private key and print it (base64url) on stdout.
    Mint(MintArgs),
    /// Append a block of restrictions to a token (no key needed) and print the new token.
    Attenuate(AttenuateArgs),
    /// Print a token's blocks as Datalog and its revocation ids; verify its signature when
    /// given the root public key.
    Inspect(InspectArgs),
}

/// `shop token mint`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("grants").args(["rights", "admin"]).required(true).multiple(true)))]
pub struct MintArgs {
    /// The root private key file (as written by `shop keygen`).
    #[arg(long, value_name = "FILE", env = "SHOP_PRIVATE_KEY")]
    pub private_key: PathBuf,
    /// The caller's name: the token's user("NAME") fact.
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// A right to grant, RESOURCE:OP with OP read or write (e.g. products:read). Repeatable;
    /// at least one --right or --admin is required.
    #[arg(long = "right", value_name = "RESOURCE:OP")]
    pub rights: Vec<Right>,
    /// Grant everything (the admin(true) fact), including other users' orders.
    #[arg(long)]
    pub admin: bool,
    /// Lifetime, such as 90s, 15m, 1h or 7d (a bare number is seconds). Without it the token
    /// never expires.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

/// `shop token attenuate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("restrictions").args(["ttl", "read_only", "resource"]).required(true).multiple(true)))]
pub struct AttenuateArgs {
    /// The token to attenuate. Without it or --token-file, the token is read from stdin.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from this file instead (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Expire at most this long from now, such as 90s, 10m, 1h or 7d (a bare number is
    /// seconds). A token never outlives an earlier expiry.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    /// Allow only reads: adds check if operation("read").
    #[arg(long)]
    pub read_only: bool,
    /// Allow only this resource (products or orders): adds check if resource("RESOURCE").
    #[arg(long, value_name = "RESOURCE")]
    pub resource: Option<String>,
}

/// `shop token inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token to inspect. Without it or --token-file, the token is read from stdin.
    #[arg(value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from this file instead (surrounding whitespace is ignored).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The root public key file: also check the signature (exit status 1 if it does not
    /// verify).
    #[arg(long, value_name = "FILE", env = "SHOP_PUBLIC_KEY")]
    pub public_key: Option<PathBuf>,
    /// Print a JSON object {"blocks", "revocation_ids", "signature"} instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    /// The clap definitions are consistent (no duplicate or dangling argument ids).
    #[test]
    fn clap_definitions_are_valid() {
        Cli::command().debug_assert();
    }

    /// Every subcommand and every flag of every subcommand has help text in `--help`.
    #[test]
    fn every_subcommand_and_flag_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, undocumented: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    undocumented.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    undocumented.push(sub_path.clone());
                }
                walk(sub, &sub_path, undocumented);
            }
        }
        let mut undocumented = Vec::new();
        walk(&Cli::command(), "shop", &mut undocumented);
        assert!(undocumented.is_empty(), "{undocumented:?}");
    }

    /// `up`'s flags work without the subcommand, and mean the same as with it.
    #[test]
    fn up_flags_work_without_the_subcommand() {
        let args = [
            "--data-dir",
            "/tmp/x",
            "--products-addr",
            "127.0.0.1:0",
            "--orders-addr",
            "127.0.0.1:1",
            "--durability",
            "never",
            "--log-format",
            "json",
        ];
        let bare = Cli::try_parse_from(std::iter::once("shop").chain(args)).unwrap();
        let up = Cli::try_parse_from(["shop", "up"].into_iter().chain(args)).unwrap();
        for cli in [bare, up] {
            let Command::Up(up) = cli.into_command() else {
                panic!("not up");
            };
            assert_eq!(up.data_dir, std::path::Path::new("/tmp/x"));
            assert_eq!(up.products_addr, "127.0.0.1:0");
            assert_eq!(up.orders_addr, "127.0.0.1:1");
            assert_eq!(up.durability, store_actor::Durability::Never);
            assert_eq!(up.log_format, service_kit::telemetry::LogFormat::Json);
        }
    }

    /// Top-level `up` flags cannot be combined with another subcommand.
    #[test]
    fn top_level_up_flags_conflict_with_subcommands() {
        let e = Cli::try_parse_from(["shop", "--data-dir", "/tmp/x", "keygen", "--out", "k"])
            .unwrap_err();
        assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{e}");
        let Command::Keygen(_) = Cli::try_parse_from(["shop", "keygen", "--out", "k"])
            .unwrap()
            .into_command()
        else {
            panic!("not keygen");
        };
    }
}
