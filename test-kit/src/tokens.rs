//! Tokens for test users, valid for an hour.

use std::time::Duration;

use biscuit_auth::KeyPair;
use service_kit::auth::tokens::{self, TokenSpec};

/// A token of `user` with `rights` (`"products:read"`, …), an admin one with `admin`.
pub fn mint(root: &KeyPair, user: &str, rights: &[&str], admin: bool) -> String {
    tokens::mint(
        root,
        &TokenSpec {
            user: user.into(),
            rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
            admin,
            ttl: Some(Duration::from_secs(3600)),
        },
    )
    .unwrap()
}
