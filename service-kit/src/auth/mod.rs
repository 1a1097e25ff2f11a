//! Capability-based auth with Biscuit tokens.
//!
//! Services hold only the root public key. A token's authority block names the caller and its
//! rights (`user("alice"); right("products", "read"); admin(true);`, see [`tokens`]); a holder
//! can attenuate it offline with checks on `resource`, `operation` and `time`. Per request the
//! [`Authenticator`] runs an authorizer that adds those three facts and allows if the token
//! grants the right (or is an admin's), with explicit run limits so that a hostile token cannot
//! burn CPU.
//!
//! Checking the signature costs tens of microseconds, so verified tokens are cached by their
//! text (bounded); expiry, attenuation checks and revocation are still evaluated on every
//! request, because they are part of the authorizer run or checked against the cached token.

pub mod keys;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use biscuit_auth::error::{Logic, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};

use crate::problem::ApiError;

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading.
    Read,
    /// Creating, changing or deleting.
    Write,
}

impl Operation {
    /// The name used in tokens: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
        }
    }
}

/// Who is calling, once authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `user(...)` of the token's authority block.
    pub user: String,
    /// Whether the token carries `admin(true)`.
    pub admin: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    /// Not `Bearer <base64url>`, or not a Biscuit.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Not signed by our root key (or tampered with).
    #[error("invalid token signature")]
    BadSignature,
    /// A time check failed.
    #[error("the token has expired")]
    Expired,
    /// One of its revocation ids is revoked.
    #[error("the token has been revoked")]
    Revoked,
    /// The authorizer ran into its limits.
    #[error("the token is too expensive to evaluate")]
    TooExpensive,
    /// Valid, but it does not grant this operation.
    #[error("the token does not grant {operation} on {resource}")]
    Forbidden {
        /// The resource asked for.
        resource: String,
        /// The operation asked for.
        operation: &'static str,
    },
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// A signature-verified token and what the request path needs from it.
struct Verified {
    token: Biscuit,
    revocation_ids: Vec<String>,
}

/// Verifies and authorizes bearer tokens against one root public key.
pub struct Authenticator {
    root: PublicKey,
    revoked: RwLock<HashSet<String>>,
    cache: RwLock<HashMap<Box<str>, Arc<Verified>>>,
    cache_capacity: usize,
    limits: AuthorizerLimits,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("root", &self.root.to_string())
            .field(
                "revoked",
                &self.revoked.read().map(|r| r.len()).unwrap_or(0),
            )
            .finish()
    }
}

/// The authorizer's run limits: generous for honest tokens (a handful of facts and checks), far
/// below what would let a crafted token hold a worker thread.
pub fn default_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1_000,
        max_iterations: 100,
        max_time: Duration::from_millis(20),
    }
}

impl Authenticator {
    /// An authenticator for tokens signed by `root`, refusing the revocation ids in `revoked`
    /// (hex, as `shop token inspect` prints them).
    pub fn new(root: PublicKey, revoked: impl IntoIterator<Item = String>) -> Self {
        Self {
            root,
            revoked: RwLock::new(
                revoked
                    .into_iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
            ),
            cache: RwLock::new(HashMap::new()),
            cache_capacity: 10_000,
            limits: default_limits(),
        }
    }

    /// Replaces the run limits (for tests of the limits themselves).
    pub fn with_limits(mut self, limits: AuthorizerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds revocation ids at run time.
    pub fn revoke(&self, ids: impl IntoIterator<Item = String>) {
        let mut revoked = self.revoked.write().unwrap();
        revoked.extend(ids.into_iter().map(|s| s.to_ascii_lowercase()));
    }

    /// Authorizes a request given its `Authorization` header value.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        resource: &str,
        operation: Operation,
    ) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthError::Malformed("expected `Bearer <token>`".into()))?;
        let verified = self.verify(token)?;
        {
            let revoked = self.revoked.read().unwrap();
            if verified
                .revocation_ids
                .iter()
                .any(|id| revoked.contains(id))
            {
                return Err(AuthError::Revoked);
            }
        }
        self.run_authorizer(&verified.token, resource, operation)
    }

    /// Checks the signature, or finds the token already checked.
    fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        if let Some(v) = self.cache.read().unwrap().get(token) {
            return Ok(v.clone());
        }
        let biscuit = Biscuit::from_base64(token, self.root).map_err(|e| match e {
            TokenError::Format(biscuit_auth::error::Format::Signature(_))
            | TokenError::Format(biscuit_auth::error::Format::InvalidSignatureSize(_)) => {
                AuthError::BadSignature
            }
            TokenError::Format(biscuit_auth::error::Format::UnknownPublicKey) => {
                AuthError::BadSignature
            }
            other => AuthError::Malformed(other.to_string()),
        })?;
        let revocation_ids = biscuit
            .revocation_identifiers()
            .iter()
            .map(|id| hex(id))
            .collect();
        let verified = Arc::new(Verified {
            token: biscuit,
            revocation_ids,
        });
        let mut cache = self.cache.write().unwrap();
        if cache.len() >= self.cache_capacity {
            // Bounded: forget everything rather than track recency; re-verifying is cheap
            // compared to the memory a flood of distinct tokens would take.
            cache.clear();
        }
        cache.insert(token.into(), verified.clone());
        Ok(verified)
    }

    fn run_authorizer(
        &self,
        token: &Biscuit,
        resource: &str,
        operation: Operation,
    ) -> Result<Caller, AuthError> {
        let op = operation.as_str();
        let built = biscuit_auth::macros::authorizer!(
            r#"
            resource({resource});
            operation({op});
            allow if admin(true);
            allow if right({resource}, {op});
            "#
        )
        .time()
        .set_limits(self.limits.clone())
        .build(token);
        let mut authorizer = built.map_err(|e| AuthError::Malformed(e.to_string()))?;
        match authorizer.authorize() {
            Ok(_) => {}
            Err(TokenError::RunLimit(_)) => return Err(AuthError::TooExpensive),
            Err(TokenError::FailedLogic(logic)) => {
                return Err(classify_failure(&logic, resource, op));
            }
            Err(other) => return Err(AuthError::Malformed(other.to_string())),
        }
        let users: Vec<(String,)> = authorizer
            .query("data($u) <- user($u)")
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        let user = users
            .into_iter()
            .next()
            .map(|(u,)| u)
            .ok_or_else(|| AuthError::Malformed("the token names no user".into()))?;
        let admins: Vec<(bool,)> = authorizer
            .query("data(true) <- admin(true)")
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        Ok(Caller {
            user,
            admin: !admins.is_empty(),
        })
    }
}

/// A failed authorization is an expiry if a time check failed, otherwise a missing right.
fn classify_failure(logic: &Logic, resource: &str, operation: &'static str) -> AuthError {
    let checks = match logic {
        Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks } => checks,
        _ => return AuthError::Malformed(logic.to_string()),
    };
    if checks.iter().any(|c| c.to_string().contains("time(")) {
        AuthError::Expired
    } else {
        AuthError::Forbidden {
            resource: resource.to_owned(),
            operation,
        }
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
