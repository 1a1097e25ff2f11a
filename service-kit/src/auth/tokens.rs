//! Minting, attenuating and inspecting tokens: the vocabulary every part agrees on.
//!
//! Authority block (signed with the root key):
//! ```text
//! user("alice");
//! right("products", "read");      // one per granted RESOURCE:OP
//! admin(true);                    // only for admins: grants everything
//! check if time($t), $t <= 2026-11-21T12:00:00Z;   // only with a TTL
//! ```
//! Attenuation blocks (appended by any holder, no key needed) add only checks, e.g.
//! `check if operation("read");`, `check if resource("products");` or a shorter expiry.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::macros::{check, fact};
use biscuit_auth::{Biscuit, KeyPair, PublicKey, UnverifiedBiscuit};

use super::hex;

/// The resources tokens can grant rights on.
pub const RESOURCES: [&str; 2] = ["products", "orders"];

/// The longest lifetime a token or an attenuation may be given (ten years).
pub const MAX_TTL: Duration = Duration::from_secs(3650 * 86_400);

fn expiry(ttl: Duration) -> Result<SystemTime, TokenError> {
    if ttl > MAX_TTL {
        return Err(TokenError("the lifetime must be at most ten years".into()));
    }
    SystemTime::now()
        .checked_add(ttl)
        .ok_or_else(|| TokenError("the lifetime is out of range".into()))
}

/// A granted right, written `RESOURCE:OP` (e.g. `products:read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Right {
    /// `products` or `orders`.
    pub resource: String,
    /// `read`, `write` or `reserve`.
    pub operation: String,
}

impl FromStr for Right {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (resource, operation) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected RESOURCE:OP, e.g. products:read"))?;
        if !RESOURCES.contains(&resource) {
            return Err(format!(
                "{s:?}: the resource is one of {}",
                RESOURCES.join(", ")
            ));
        }
        if !matches!(operation, "read" | "write" | "reserve") {
            return Err(format!("{s:?}: the operation is read, write or reserve"));
        }
        Ok(Right {
            resource: resource.to_owned(),
            operation: operation.to_owned(),
        })
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.operation)
    }
}

/// What a new token grants.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// The caller's name.
    pub user: String,
    /// Granted rights.
    pub rights: Vec<Right>,
    /// Admin: everything, including other users' orders.
    pub admin: bool,
    /// Lifetime from now; `None` never expires.
    pub ttl: Option<Duration>,
}

/// What an attenuation restricts.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    /// Expire at most this long from now.
    pub ttl: Option<Duration>,
    /// Allow only reads.
    pub read_only: bool,
    /// Allow only this resource.
    pub resource: Option<String>,
}

/// A token could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(String);

impl From<biscuit_auth::error::Token> for TokenError {
    fn from(e: biscuit_auth::error::Token) -> Self {
        TokenError(e.to_string())
    }
}

/// Signs a new token with the root key; returns it as base64url.
pub fn mint(root: &KeyPair, spec: &TokenSpec) -> Result<String, TokenError> {
    let user = spec.user.trim();
    if user.is_empty() {
        return Err(TokenError("the user name must not be empty".into()));
    }
    if spec.rights.is_empty() && !spec.admin {
        return Err(TokenError(
            "a token must grant at least one right or admin".into(),
        ));
    }
    let mut builder = Biscuit::builder().fact(fact!("user({user})"))?;
    for right in &spec.rights {
        let (resource, operation) = (right.resource.as_str(), right.operation.as_str());
        builder = builder.fact(fact!("right({resource}, {operation})"))?;
    }
    if spec.admin {
        builder = builder.fact(fact!("admin(true)"))?;
    }
    if let Some(ttl) = spec.ttl {
        let expiry = expiry(ttl)?;
        builder = builder.check(check!("check if time($t), $t <= {expiry}"))?;
    }
    Ok(builder.build(root)?.to_base64()?)
}

/// Appends a block of restrictions (no key needed); returns the new token.
pub fn attenuate(token: &str, restriction: &Restriction) -> Result<String, TokenError> {
    let token = UnverifiedBiscuit::from_base64(token.trim())?;
    let mut block = BlockBuilder::new();
    let mut restricted = false;
    if let Some(ttl) = restriction.ttl {
        let expiry = expiry(ttl)?;
        block = block.check(check!("check if time($t), $t <= {expiry}"))?;
        restricted = true;
    }
    if restriction.read_only {
        block = block.check(check!(r#"check if operation("read")"#))?;
        restricted = true;
    }
    if let Some(resource) = restriction.resource.as_deref() {
        if !RESOURCES.contains(&resource) {
            return Err(TokenError(format!(
                "{resource:?}: the resource is one of {}",
                RESOURCES.join(", ")
            )));
        }
        block = block.check(check!("check if resource({resource})"))?;
        restricted = true;
    }
    if !restricted {
        return Err(TokenError(
            "nothing to restrict: give --ttl, --read-only or --resource".into(),
        ));
    }
    Ok(token.append(block)?.to_base64()?)
}

/// What a token says.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Each block's Datalog source, authority first.
    pub blocks: Vec<String>,
    /// Revocation ids (hex), one per block: revoke any to revoke the token and its descendants.
    pub revocation_ids: Vec<String>,
    /// With a public key: whether the signature verifies.
    pub signature: Option<Result<(), String>>,
}

/// Reads a token's blocks and revocation ids; verifies it when a public key is given.
pub fn inspect(token: &str, root: Option<PublicKey>) -> Result<Inspection, TokenError> {
    let token = token.trim();
    let unverified = UnverifiedBiscuit::from_base64(token)?;
    let blocks = (0..unverified.block_count())
        .map(|i| unverified.print_block_source(i))
        .collect::<Result<Vec<_>, _>>()?;
    let revocation_ids = unverified
        .revocation_identifiers()
        .iter()
        .map(|id| hex(id))
        .collect();
    let signature = root.map(|key| {
        Biscuit::from_base64(token, key)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok(Inspection {
        blocks,
        revocation_ids,
        signature,
    })
}

/// Parses a duration such as `90s`, `15m`, `1h`, `7d` (or a bare number of seconds).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 90s, 15m, 1h or 7d"))?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d")),
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|secs| *secs <= MAX_TTL.as_secs())
        .ok_or_else(|| format!("{s:?}: at most ten years"))?;
    if secs == 0 {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_and_ttls_parse() {
        assert_eq!(
            "products:read".parse::<Right>().unwrap(),
            Right {
                resource: "products".into(),
                operation: "read".into()
            }
        );
        for bad in [
            "products",
            ":read",
            "products:delete",
            "foo:read",
            "Products:read",
        ] {
            assert!(bad.parse::<Right>().is_err(), "{bad}");
        }
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_ttl("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "h", "1w", "0m", "-1s", "3651d", "307445734561825861d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minted_tokens_inspect_and_attenuate() {
        let root = KeyPair::new();
        let token = mint(
            &root,
            &TokenSpec {
                user: "alice".into(),
                rights: vec!["products:read".parse().unwrap()],
                admin: false,
                ttl: Some(Duration::from_secs(60)),
            },
        )
        .unwrap();
        let seen = inspect(&token, Some(root.public())).unwrap();
        assert!(
            seen.blocks[0].contains("user(\"alice\")"),
            "{:?}",
            seen.blocks
        );
        assert!(seen.blocks[0].contains("right(\"products\", \"read\")"));
        assert!(seen.blocks[0].contains("check if time($t)"));
        assert_eq!(seen.revocation_ids.len(), 1);
        assert_eq!(seen.signature, Some(Ok(())));
        let other = KeyPair::new();
        assert!(matches!(
            inspect(&token, Some(other.public())).unwrap().signature,
            Some(Err(_))
        ));

        let narrowed = attenuate(
            &token,
            &Restriction {
                read_only: true,
                ..Restriction::default()
            },
        )
        .unwrap();
        let seen = inspect(&narrowed, Some(root.public())).unwrap();
        assert_eq!(seen.blocks.len(), 2);
        assert!(seen.blocks[1].contains("operation(\"read\")"));
        assert_eq!(seen.signature, Some(Ok(())));
        assert!(attenuate(&token, &Restriction::default()).is_err());
        assert!(mint(&root, &TokenSpec::default()).is_err());
        let no_rights = TokenSpec {
            user: "bob".into(),
            ..TokenSpec::default()
        };
        assert!(mint(&root, &no_rights).is_err());
        let far = TokenSpec {
            user: "bob".into(),
            admin: true,
            ttl: Some(Duration::MAX),
            ..TokenSpec::default()
        };
        assert!(mint(&root, &far).is_err());
    }
}
