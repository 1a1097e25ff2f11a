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
use std::time::{Duration, SystemTime};

use biscuit_auth::error::{Logic, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey};

use crate::problem::ApiError;

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// `user` and `admin` facts of the authority block: fixed for the token's life.
    caller: Caller,
    /// Allow decisions per (resource, operation), each valid until the instant it was also
    /// checked to hold (see [`Authenticator::authorize`]).
    allowed_until: RwLock<HashMap<(String, Operation), SystemTime>>,
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

/// How long an allow decision may be reused (it is checked to still hold at the end).
const DECISION_WINDOW: Duration = Duration::from_secs(1);

/// The authorizer's run limits: generous for honest tokens (a handful of facts and checks), far
/// below what would let a crafted token hold a worker thread. The fact and iteration limits
/// are what bound a crafted token's work; the time limit is a backstop measured in wall time,
/// so it must leave room for a thread that is preempted on a busy machine (20 ms refused honest
/// tokens now and then in debug test runs on 2 loaded cores).
pub fn default_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1_000,
        max_iterations: 100,
        max_time: Duration::from_millis(250),
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
        let now = SystemTime::now();
        let key = (resource.to_owned(), operation);
        if verified
            .allowed_until
            .read()
            .unwrap()
            .get(&key)
            .is_some_and(|until| now <= *until)
        {
            return Ok(verified.caller.clone());
        }
        // Run the authorizer now, and again as of DECISION_WINDOW later. Time checks in tokens
        // are bounds on `time` (an expiry, perhaps a not-before), so a token allowed at both
        // instants is allowed between them: the decision can be reused until then without
        // ever letting an expired token through. Revocation is checked above on every request.
        self.run_authorizer(&verified.token, resource, operation, now)?;
        let until = now + DECISION_WINDOW;
        if self
            .run_authorizer(&verified.token, resource, operation, until)
            .is_ok()
        {
            verified.allowed_until.write().unwrap().insert(key, until);
        }
        Ok(verified.caller.clone())
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
        let caller = self.caller_of(&biscuit)?;
        let verified = Arc::new(Verified {
            token: biscuit,
            revocation_ids,
            caller,
            allowed_until: RwLock::new(HashMap::new()),
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

    /// Reads `user` and `admin` from the authority block (only authority facts are trusted).
    fn caller_of(&self, token: &Biscuit) -> Result<Caller, AuthError> {
        let mut authorizer = biscuit_auth::AuthorizerBuilder::new()
            .set_limits(self.limits.clone())
            .build(token)
            .map_err(evaluation_error)?;
        let users: Vec<(String,)> = authorizer
            .query("data($u) <- user($u)")
            .map_err(evaluation_error)?;
        let user = users
            .into_iter()
            .next()
            .map(|(u,)| u)
            .ok_or_else(|| AuthError::Malformed("the token names no user".into()))?;
        let admins: Vec<(bool,)> = authorizer
            .query("data(true) <- admin(true)")
            .map_err(evaluation_error)?;
        Ok(Caller {
            user,
            admin: !admins.is_empty(),
        })
    }

    /// Runs the authorizer for one request as of `at`.
    fn run_authorizer(
        &self,
        token: &Biscuit,
        resource: &str,
        operation: Operation,
        at: SystemTime,
    ) -> Result<(), AuthError> {
        let op = operation.as_str();
        let built = biscuit_auth::macros::authorizer!(
            r#"
            resource({resource});
            operation({op});
            time({at});
            allow if admin(true);
            allow if right({resource}, {op});
            "#
        )
        .set_limits(self.limits.clone())
        .build(token);
        let mut authorizer = built.map_err(evaluation_error)?;
        match authorizer.authorize() {
            Ok(_) => Ok(()),
            Err(TokenError::RunLimit(_)) => Err(AuthError::TooExpensive),
            Err(TokenError::FailedLogic(logic)) => Err(classify_failure(&logic, resource, op)),
            Err(other) => Err(AuthError::Malformed(other.to_string())),
        }
    }
}

/// A token that could not be evaluated: over the run limits, or malformed.
fn evaluation_error(e: TokenError) -> AuthError {
    match e {
        TokenError::RunLimit(_) => AuthError::TooExpensive,
        other => AuthError::Malformed(other.to_string()),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use biscuit_auth::KeyPair;
    use biscuit_auth::builder::BlockBuilder;
    use biscuit_auth::macros::fact;

    use super::tokens::{Restriction, TokenSpec, attenuate, mint};
    use super::*;

    fn token(
        root: &KeyPair,
        user: &str,
        rights: &[&str],
        admin: bool,
        ttl: Option<Duration>,
    ) -> String {
        mint(
            root,
            &TokenSpec {
                user: user.into(),
                rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
                admin,
                ttl,
            },
        )
        .unwrap()
    }

    fn bearer(t: &str) -> Option<String> {
        Some(format!("Bearer {t}"))
    }

    #[test]
    fn rights_admin_and_attenuation() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        let alice = token(
            &root,
            "alice",
            &["products:read", "products:write"],
            false,
            None,
        );
        let caller = auth
            .authorize(bearer(&alice).as_deref(), "products", Operation::Write)
            .unwrap();
        assert_eq!(
            caller,
            Caller {
                user: "alice".into(),
                admin: false
            }
        );
        // Twice: the second answer comes from the decision cache and must be the same.
        assert!(
            auth.authorize(bearer(&alice).as_deref(), "products", Operation::Write)
                .is_ok()
        );
        assert!(matches!(
            auth.authorize(bearer(&alice).as_deref(), "orders", Operation::Read),
            Err(AuthError::Forbidden { .. })
        ));
        let read_only = attenuate(
            &alice,
            &Restriction {
                read_only: true,
                ..Restriction::default()
            },
        )
        .unwrap();
        assert!(
            auth.authorize(bearer(&read_only).as_deref(), "products", Operation::Read)
                .is_ok()
        );
        assert!(matches!(
            auth.authorize(bearer(&read_only).as_deref(), "products", Operation::Write),
            Err(AuthError::Forbidden { .. })
        ));
        let admin = token(&root, "root", &[], true, None);
        let caller = auth
            .authorize(bearer(&admin).as_deref(), "orders", Operation::Write)
            .unwrap();
        assert!(caller.admin);
        // The scheme is case-insensitive.
        assert!(
            auth.authorize(
                Some(&format!("bEaReR {alice}")),
                "products",
                Operation::Read
            )
            .is_ok()
        );
    }

    #[test]
    fn an_appended_block_cannot_grant_itself_admin() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        let reader = token(&root, "mallory", &["products:read"], false, None);
        let parsed = Biscuit::from_base64(&reader, root.public()).unwrap();
        let forged = parsed
            .append(
                BlockBuilder::new()
                    .fact(fact!("admin(true)"))
                    .unwrap()
                    .fact(fact!(r#"right("products", "write")"#))
                    .unwrap()
                    .fact(fact!(r#"user("admin")"#))
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        let err = auth.authorize(bearer(&forged).as_deref(), "products", Operation::Write);
        assert!(matches!(err, Err(AuthError::Forbidden { .. })), "{err:?}");
        let caller = auth
            .authorize(bearer(&forged).as_deref(), "products", Operation::Read)
            .unwrap();
        assert_eq!(caller.user, "mallory");
        assert!(!caller.admin);
    }

    #[test]
    fn bad_tokens_are_unauthorized() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        assert_eq!(
            auth.authorize(None, "products", Operation::Read),
            Err(AuthError::Missing)
        );
        for header in ["Bearer", "Bearer ", "Basic abc", "token"] {
            assert!(
                matches!(
                    auth.authorize(Some(header), "products", Operation::Read),
                    Err(AuthError::Malformed(_))
                ),
                "{header}"
            );
        }
        assert!(matches!(
            auth.authorize(Some("Bearer garbage"), "products", Operation::Read),
            Err(AuthError::Malformed(_))
        ));
        let other = KeyPair::new();
        let forged = token(&other, "eve", &["products:read"], true, None);
        assert_eq!(
            auth.authorize(bearer(&forged).as_deref(), "products", Operation::Read),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn revocation_applies_to_cached_tokens_and_descendants() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        let alice = token(&root, "alice", &["products:read"], false, None);
        let child = attenuate(
            &alice,
            &Restriction {
                read_only: true,
                ..Restriction::default()
            },
        )
        .unwrap();
        assert!(
            auth.authorize(bearer(&alice).as_deref(), "products", Operation::Read)
                .is_ok()
        );
        let ids = tokens::inspect(&alice, None).unwrap().revocation_ids;
        auth.revoke([ids[0].clone()]);
        for t in [&alice, &child] {
            assert_eq!(
                auth.authorize(bearer(t).as_deref(), "products", Operation::Read),
                Err(AuthError::Revoked)
            );
        }
    }

    #[test]
    fn expiry_is_exact_despite_the_decision_cache() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        let short = token(
            &root,
            "alice",
            &["products:read"],
            false,
            Some(Duration::from_secs(1)),
        );
        assert!(
            auth.authorize(bearer(&short).as_deref(), "products", Operation::Read)
                .is_ok()
        );
        // Biscuit dates have whole seconds: a 1 s token is valid to the end of its second.
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(
            auth.authorize(bearer(&short).as_deref(), "products", Operation::Read),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn hostile_tokens_hit_the_run_limits() {
        let root = KeyPair::new();
        let tight = AuthorizerLimits {
            max_facts: 10,
            max_iterations: 5,
            max_time: Duration::from_millis(20),
        };
        let auth = Authenticator::new(root.public(), []).with_limits(tight);
        let mut builder = Biscuit::builder().fact(fact!(r#"user("x")"#)).unwrap();
        for i in 0..50i64 {
            builder = builder.fact(fact!("n({i})")).unwrap();
        }
        // A rule that squares the fact count: 2,500 derived facts against a limit of 10.
        builder = builder
            .rule(biscuit_auth::macros::rule!("pair($a, $b) <- n($a), n($b)"))
            .unwrap();
        let big = builder.build(&root).unwrap().to_base64().unwrap();
        assert_eq!(
            auth.authorize(bearer(&big).as_deref(), "products", Operation::Read),
            Err(AuthError::TooExpensive)
        );
    }
}
