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
//! text, bounded by an estimate of the memory they take; expiry, attenuation checks and
//! revocation are still evaluated on every request, because they are part of the authorizer run
//! or checked against the cached token.
//!
//! A hostile client holding a valid token can append blocks offline, so what a token may cost is
//! bounded before any signature work ([`TokenLimits`]: its size, its blocks, the facts, rules and
//! checks it carries), and a refused token is remembered for a while by its hash, so that
//! sending it again costs a hash and a lookup. The authorizer is bounded by work (facts,
//! iterations); its wall-time limit is only a backstop against the machine being slow, and
//! hitting it is the server's problem (503, retry), never the caller's (401).

pub mod keys;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use biscuit_auth::error::{Format, Logic, RunLimit, Token as TokenError};
use biscuit_auth::{AuthorizerLimits, Biscuit, PublicKey, UnverifiedBiscuit};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Reading.
    Read,
    /// Creating, changing or deleting.
    Write,
    /// Holding, committing and releasing stock (what orders' service token may do at products,
    /// without being able to change products).
    Reserve,
}

impl Operation {
    /// The name used in tokens: `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Reserve => "reserve",
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
    /// The authorizer ran into its work limits (facts, iterations).
    #[error("the token is too expensive to evaluate")]
    TooExpensive,
    /// Over the size, block or statement limits, refused before any signature work.
    #[error("the token is too large: {0}")]
    TooLarge(String),
    /// The authorizer ran out of wall time: the server is too busy, not the token's fault.
    #[error("the server is too busy to check the token now; retry")]
    Busy,
    /// Valid, but it does not grant this operation.
    #[error("the token does not grant {operation} on {resource}")]
    Forbidden {
        /// The resource asked for.
        resource: String,
        /// The operation asked for.
        operation: &'static str,
    },
}

impl AuthError {
    /// The `reason` label of the rejection counter.
    fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::Revoked => "revoked",
            AuthError::TooExpensive => "too_expensive",
            AuthError::TooLarge(_) => "too_large",
            AuthError::Busy => "busy",
            AuthError::Forbidden { .. } => "forbidden",
        }
    }

    /// Whether the same token would be refused the same way for a while, whatever it asks:
    /// then it is remembered. (Missing the right is per resource; busy is the server's state.)
    fn lasts(&self) -> bool {
        !matches!(
            self,
            AuthError::Forbidden { .. } | AuthError::Busy | AuthError::Missing
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            AuthError::Busy => ApiError::Unavailable {
                detail: e.to_string(),
                retry_after: 1,
            },
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// What a token may cost, checked before its signature (size, blocks) or once after it (the
/// statements it carries), and what verified and refused tokens may take in memory.
#[derive(Debug, Clone)]
pub struct TokenLimits {
    /// Longest token text, in bytes (base64url).
    pub max_bytes: usize,
    /// Most blocks (the authority block and its attenuations).
    pub max_blocks: usize,
    /// Most facts, rules and checks in all its blocks together.
    pub max_statements: usize,
    /// Memory budget of the verified-token cache, estimated from the tokens' sizes.
    pub cache_bytes: usize,
    /// Most refused tokens remembered (by hash).
    pub rejected_entries: usize,
    /// How long a refusal is remembered (a token refused for a time check may become valid).
    pub rejected_for: Duration,
}

/// Default [`TokenLimits::max_bytes`]: honest tokens are a few hundred bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            max_blocks: 8,
            max_statements: 64,
            cache_bytes: 32 * 1024 * 1024,
            rejected_entries: 4096,
            rejected_for: Duration::from_secs(30),
        }
    }
}

/// A parsed token takes about this many times its text in memory (symbol tables, blocks,
/// datalog): measured as ~13× on attenuated tokens of 48 KB.
const MEMORY_PER_TOKEN_BYTE: usize = 16;
/// Fixed overhead of a cache entry.
const MEMORY_PER_ENTRY: usize = 1024;

fn cache_cost(token: &str) -> usize {
    token.len() * MEMORY_PER_TOKEN_BYTE + MEMORY_PER_ENTRY
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    reason: &'static str,
}

/// Verified tokens by their text, with the estimated memory they take.
#[derive(Default)]
struct Cache {
    /// foldhash, not SipHash: a cached request hashes its whole token (hundreds of bytes), and
    /// foldhash is several times faster; its per-process random seed keeps collisions out of
    /// an attacker's reach, and only tokens that verified get in.
    tokens: HashMap<Box<str>, Arc<Verified>, foldhash::quality::RandomState>,
    bytes: usize,
}

/// Refused tokens by the SHA-256 of their text, until a time.
#[derive(Default)]
struct Rejected {
    tokens: HashMap<[u8; 32], (AuthError, Instant)>,
}

/// A signature-verified token and what the request path needs from it.
struct Verified {
    token: Biscuit,
    revocation_ids: Vec<String>,
    /// `user` and `admin` facts of the authority block: fixed for the token's life.
    caller: Caller,
    /// Allow decisions per (resource, operation), each valid until the instant it was also
    /// checked to hold (see [`Authenticator::authorize`]).
    /// Per (resource, operation): a handful at most, so a scan, with no key to allocate.
    allowed_until: RwLock<Vec<(Box<str>, Operation, SystemTime)>>,
}

/// Verifies and authorizes bearer tokens against one root public key.
pub struct Authenticator {
    root: PublicKey,
    revoked: RwLock<HashSet<String>>,
    cache: RwLock<Cache>,
    rejected: Mutex<Rejected>,
    tokens: TokenLimits,
    limits: AuthorizerLimits,
    rejections: Family<RejectionLabels, Counter>,
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

/// The authorizer's run limits: generous for honest tokens (a handful of facts and checks, two
/// or three iterations), far below what would let a crafted token hold a worker thread. The
/// fact and iteration limits are what bound a crafted token's work (with at most
/// [`TokenLimits::max_statements`] statements, 256 derived facts stop a quadratic rule within
/// a millisecond); the time limit is only a backstop in wall time, answered as [`AuthError::Busy`].
pub fn default_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 256,
        max_iterations: 16,
        max_time: Duration::from_secs(1),
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
            cache: RwLock::new(Cache::default()),
            rejected: Mutex::new(Rejected::default()),
            tokens: TokenLimits::default(),
            limits: default_limits(),
            rejections: Family::default(),
        }
    }

    /// Replaces the token limits.
    pub fn with_token_limits(mut self, tokens: TokenLimits) -> Self {
        self.tokens = tokens;
        self
    }

    /// Refusals by reason, for `/metrics` (`auth_rejections_total{reason=...}`).
    pub fn register_metrics(&self, metrics: &crate::metrics::Metrics) {
        metrics.register(
            "auth_rejections",
            "Requests refused by token checking, by reason",
            self.rejections.clone(),
        );
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
        self.check(authorization, resource, operation)
            .inspect_err(|e| {
                self.rejections
                    .get_or_create(&RejectionLabels { reason: e.reason() })
                    .inc();
            })
    }

    fn check(
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
        if verified
            .allowed_until
            .read()
            .unwrap()
            .iter()
            .find(|(r, o, _)| **r == *resource && *o == operation)
            .is_some_and(|(_, _, until)| now <= *until)
        {
            return Ok(verified.caller.clone());
        }
        // Run the authorizer now, and again as of DECISION_WINDOW later. Time checks in tokens
        // are bounds on `time` (an expiry, perhaps a not-before), so a token allowed at both
        // instants is allowed between them: the decision can be reused until then without
        // ever letting an expired token through. Revocation is checked above on every request.
        if let Err(e) = self.run_authorizer(&verified.token, resource, operation, now) {
            if e.lasts() {
                // Expired, or too expensive: stop running the authorizer for it.
                self.forget(token);
                self.remember_refusal(token, &e);
            }
            return Err(e);
        }
        let until = now + DECISION_WINDOW;
        if self
            .run_authorizer(&verified.token, resource, operation, until)
            .is_ok()
        {
            let mut allowed = verified.allowed_until.write().unwrap();
            match allowed
                .iter_mut()
                .find(|(r, o, _)| **r == *resource && *o == operation)
            {
                Some((_, _, at)) => *at = until,
                None => allowed.push((resource.into(), operation, until)),
            }
        }
        Ok(verified.caller.clone())
    }

    /// Checks the signature, or finds the token already checked (or already refused).
    fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        if let Some(v) = self.cache.read().unwrap().tokens.get(token) {
            return Ok(v.clone());
        }
        // Before any work: a token past the size limit is refused on its length alone.
        if token.len() > self.tokens.max_bytes {
            return Err(AuthError::TooLarge(format!(
                "{} bytes, at most {}",
                token.len(),
                self.tokens.max_bytes
            )));
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(refused) = self.refused(&hash) {
            return Err(refused);
        }
        let verified = self.verify_new(token).inspect_err(|e| {
            if e.lasts() {
                self.rejected
                    .lock()
                    .unwrap()
                    .insert(hash, e.clone(), &self.tokens);
            }
        })?;
        let verified = Arc::new(verified);
        let mut cache = self.cache.write().unwrap();
        let cost = cache_cost(token);
        if cache.bytes + cost > self.tokens.cache_bytes {
            // Bounded: forget everything rather than track recency; re-verifying is cheap
            // compared to the memory a flood of distinct tokens would take.
            cache.tokens.clear();
            cache.bytes = 0;
        }
        if cache
            .tokens
            .insert(token.into(), verified.clone())
            .is_none()
        {
            cache.bytes += cost;
        }
        Ok(verified)
    }

    /// A refusal remembered for this token's hash, if it has not run out.
    fn refused(&self, hash: &[u8; 32]) -> Option<AuthError> {
        let rejected = self.rejected.lock().unwrap();
        let (error, until) = rejected.tokens.get(hash)?;
        (Instant::now() < *until).then(|| error.clone())
    }

    fn remember_refusal(&self, token: &str, error: &AuthError) {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.rejected
            .lock()
            .unwrap()
            .insert(hash, error.clone(), &self.tokens);
    }

    fn forget(&self, token: &str) {
        let mut cache = self.cache.write().unwrap();
        if cache.tokens.remove(token).is_some() {
            cache.bytes = cache.bytes.saturating_sub(cache_cost(token));
        }
    }

    /// Parses the token, refuses too many blocks or statements, then checks the signature.
    fn verify_new(&self, token: &str) -> Result<Verified, AuthError> {
        let unverified = UnverifiedBiscuit::from_base64(token)
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        if unverified.block_count() > self.tokens.max_blocks {
            return Err(AuthError::TooLarge(format!(
                "{} blocks, at most {}",
                unverified.block_count(),
                self.tokens.max_blocks
            )));
        }
        let biscuit = unverified.verify(self.root).map_err(|e| match e {
            Format::Signature(_) | Format::InvalidSignatureSize(_) | Format::UnknownPublicKey => {
                AuthError::BadSignature
            }
            other => AuthError::Malformed(other.to_string()),
        })?;
        // The authorizer's fact limit counts only derived facts, not those the token carries.
        let mut statements = 0;
        for block in 0..biscuit.block_count() {
            let source = biscuit
                .print_block_source(block)
                .map_err(|e| AuthError::Malformed(e.to_string()))?;
            statements += source.matches(";\n").count();
        }
        if statements > self.tokens.max_statements {
            return Err(AuthError::TooLarge(format!(
                "{statements} facts, rules and checks, at most {}",
                self.tokens.max_statements
            )));
        }
        let revocation_ids = biscuit
            .revocation_identifiers()
            .iter()
            .map(|id| hex(id))
            .collect();
        let caller = self.caller_of(&biscuit)?;
        Ok(Verified {
            token: biscuit,
            revocation_ids,
            caller,
            allowed_until: RwLock::new(Vec::new()),
        })
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
            Err(TokenError::RunLimit(limit)) => Err(run_limit(limit)),
            Err(TokenError::FailedLogic(logic)) => Err(classify_failure(&logic, resource, op)),
            Err(other) => Err(AuthError::Malformed(other.to_string())),
        }
    }
}

/// A token that could not be evaluated: over the run limits, or malformed.
fn evaluation_error(e: TokenError) -> AuthError {
    match e {
        TokenError::RunLimit(limit) => run_limit(limit),
        other => AuthError::Malformed(other.to_string()),
    }
}

/// Work limits are the token's doing; the time limit is the machine's.
fn run_limit(limit: RunLimit) -> AuthError {
    match limit {
        RunLimit::Timeout => AuthError::Busy,
        _ => AuthError::TooExpensive,
    }
}

impl Rejected {
    fn insert(&mut self, hash: [u8; 32], error: AuthError, limits: &TokenLimits) {
        let now = Instant::now();
        if self.tokens.len() >= limits.rejected_entries {
            self.tokens.retain(|_, (_, until)| *until > now);
            if self.tokens.len() >= limits.rejected_entries {
                self.tokens.clear();
            }
        }
        self.tokens.insert(hash, (error, now + limits.rejected_for));
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

    fn rejections(auth: &Authenticator, reason: &'static str) -> u64 {
        auth.rejections
            .get_or_create(&RejectionLabels { reason })
            .get()
    }

    #[test]
    fn oversized_tokens_are_refused_before_any_signature_work() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        // Not even base64: only the length is looked at.
        let huge = "A".repeat(DEFAULT_MAX_TOKEN_BYTES + 1);
        let err = auth.authorize(bearer(&huge).as_deref(), "products", Operation::Read);
        assert!(matches!(err, Err(AuthError::TooLarge(_))), "{err:?}");
        assert_eq!(ApiError::from(err.unwrap_err()).kind().0, 401);
        assert_eq!(rejections(&auth, "too_large"), 1);
    }

    /// A valid token whose holder appended many blocks, or a block of many facts, is refused.
    #[test]
    fn tokens_with_too_many_blocks_or_facts_are_refused() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []).with_token_limits(TokenLimits {
            max_bytes: 1 << 20,
            ..TokenLimits::default()
        });
        let alice = token(&root, "alice", &["products:read"], false, None);
        let mut deep = Biscuit::from_base64(&alice, root.public()).unwrap();
        for _ in 0..9 {
            deep = deep.append(BlockBuilder::new()).unwrap();
        }
        let err = auth.authorize(
            bearer(&deep.to_base64().unwrap()).as_deref(),
            "products",
            Operation::Read,
        );
        assert!(
            matches!(&err, Err(AuthError::TooLarge(m)) if m.contains("blocks")),
            "{err:?}"
        );
        let mut block = BlockBuilder::new();
        for i in 0..100i64 {
            block = block.fact(fact!("n({i})")).unwrap();
        }
        let wide = Biscuit::from_base64(&alice, root.public())
            .unwrap()
            .append(block)
            .unwrap()
            .to_base64()
            .unwrap();
        let err = auth.authorize(bearer(&wide).as_deref(), "products", Operation::Read);
        assert!(
            matches!(&err, Err(AuthError::TooLarge(m)) if m.contains("facts")),
            "{err:?}"
        );
        // The honest parent is still fine.
        assert!(
            auth.authorize(bearer(&alice).as_deref(), "products", Operation::Read)
                .is_ok()
        );
    }

    /// The verified-token cache stays within its memory budget however many tokens arrive.
    #[test]
    fn the_token_cache_is_bounded_by_bytes() {
        let root = KeyPair::new();
        let budget = 64 * 1024;
        let auth = Authenticator::new(root.public(), []).with_token_limits(TokenLimits {
            cache_bytes: budget,
            ..TokenLimits::default()
        });
        let alice = token(&root, "alice", &["products:read"], false, None);
        for _ in 0..200 {
            // Each attenuation is signed with a fresh key: 200 distinct tokens.
            let child = attenuate(
                &alice,
                &Restriction {
                    read_only: true,
                    ..Restriction::default()
                },
            )
            .unwrap();
            let _ = auth.authorize(bearer(&child).as_deref(), "products", Operation::Read);
            let cache = auth.cache.read().unwrap();
            assert!(cache.bytes <= budget, "{} > {budget}", cache.bytes);
            assert!(cache.tokens.len() * MEMORY_PER_ENTRY <= budget);
        }
    }

    /// A refused token is remembered by its hash: sent again, it is refused without parsing,
    /// verifying or running anything, and every refusal is counted by reason.
    #[test]
    fn repeated_rejections_are_remembered_and_counted() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []);
        let other = KeyPair::new();
        let forged = token(&other, "eve", &["products:read"], true, None);
        for _ in 0..3 {
            assert_eq!(
                auth.authorize(bearer(&forged).as_deref(), "products", Operation::Read),
                Err(AuthError::BadSignature)
            );
        }
        let hash: [u8; 32] = Sha256::digest(forged.as_bytes()).into();
        assert_eq!(auth.refused(&hash), Some(AuthError::BadSignature));
        assert_eq!(rejections(&auth, "bad_signature"), 3);

        // A token too expensive for the authorizer's work limits is dropped from the cache of
        // verified tokens and remembered as refused.
        let mut builder = Biscuit::builder().fact(fact!(r#"user("x")"#)).unwrap();
        for i in 0..40i64 {
            builder = builder.fact(fact!("n({i})")).unwrap();
        }
        let costly = builder
            .rule(biscuit_auth::macros::rule!("pair($a, $b) <- n($a), n($b)"))
            .unwrap()
            .build(&root)
            .unwrap()
            .to_base64()
            .unwrap();
        for _ in 0..2 {
            assert_eq!(
                auth.authorize(bearer(&costly).as_deref(), "products", Operation::Read),
                Err(AuthError::TooExpensive)
            );
        }
        let hash: [u8; 32] = Sha256::digest(costly.as_bytes()).into();
        assert_eq!(auth.refused(&hash), Some(AuthError::TooExpensive));
        assert!(
            !auth
                .cache
                .read()
                .unwrap()
                .tokens
                .contains_key(costly.as_str())
        );
        assert_eq!(rejections(&auth, "too_expensive"), 2);
    }

    /// Hitting the authorizer's time limit is the server's slowness: 503, never 401, and not
    /// remembered against the token.
    #[test]
    fn a_time_limit_hit_is_busy_not_unauthorized() {
        let root = KeyPair::new();
        let auth = Authenticator::new(root.public(), []).with_limits(AuthorizerLimits {
            max_time: Duration::ZERO,
            ..default_limits()
        });
        let alice = token(&root, "alice", &["products:read"], false, None);
        let err = auth
            .authorize(bearer(&alice).as_deref(), "products", Operation::Read)
            .unwrap_err();
        assert_eq!(err, AuthError::Busy);
        assert_eq!(ApiError::from(err).kind().0, 503);
        let hash: [u8; 32] = Sha256::digest(alice.as_bytes()).into();
        assert_eq!(auth.refused(&hash), None);
    }

    /// Under CPU starvation (busy threads on every core, several times over) an honest token is
    /// never refused: the work limits bound the authorizer, not the clock.
    #[test]
    fn honest_tokens_pass_under_cpu_starvation() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let spinners: Vec<_> = (0..cores * 4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let root = KeyPair::new();
        let alice = token(&root, "alice", &["products:read"], false, None);
        let mut refused = Vec::new();
        for _ in 0..100 {
            // A fresh authenticator each time: no cache, the whole path runs.
            let auth = Authenticator::new(root.public(), []);
            if let Err(e) = auth.authorize(bearer(&alice).as_deref(), "products", Operation::Read) {
                refused.push(e);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for s in spinners {
            s.join().unwrap();
        }
        assert!(refused.is_empty(), "{refused:?}");
    }
}
