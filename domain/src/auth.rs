//! Authentication on `$connect`: API Gateway runs an authorizer once, before the socket opens; the
//! principal it vouches for then rides along in the request context of every later event.

use async_trait::async_trait;

use crate::connection::Principal;
use crate::room::RoomGrants;
use crate::time::Timestamp;

/// Who a token vouches for: its subject, and the private rooms it grants (its `rooms` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: Principal,
    pub grants: RoomGrants,
    /// When the token stops vouching (its `exp`): the connection it opened is refused after it
    /// unless it re-authenticates (`reauth`).
    pub expires_at: Option<Timestamp>,
}

impl Identity {
    pub fn new(principal: Principal) -> Self {
        Self {
            principal,
            grants: RoomGrants::default(),
            expires_at: None,
        }
    }
}

/// Why a token was refused. Each kind is one line in the authorizer's log and decides its answer:
/// a client with a missing or expired token should fetch a new one (401); any other is refused
/// outright (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token was presented")]
    Missing,
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("the token's signature or algorithm is not one this service accepts")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// The keys to check it with could not be had (the JWKS endpoint is down, say).
    #[error("the signing keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// Whether the client should get a fresh token and try again (HTTP 401), rather than being
    /// refused outright (HTTP 403).
    pub fn asks_for_a_new_token(&self) -> bool {
        matches!(self, TokenError::Missing | TokenError::Expired)
    }

    /// A stable name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed(_) => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

/// Checks a bearer token.
///
/// Every adapter MUST:
/// - return the token's subject as the `Principal` (and its `rooms` claim as grants, refusing a
///   malformed one as `Malformed`) only when signature, algorithm, expiry,
///   not-before, issuer and audience all check out;
/// - refuse `alg: none` and any algorithm it was not configured for (no HS/RS confusion);
/// - never write the token, or any part of it, to a log.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify(&self, token: &str) -> Result<Identity, TokenError>;
}

/// The authorizer's rule: no token, no entry; otherwise the verifier decides.
pub async fn authenticate(
    verifier: &dyn TokenVerifier,
    token: Option<&str>,
) -> Result<Identity, TokenError> {
    match token.map(str::trim) {
        None | Some("") => Err(TokenError::Missing),
        Some(token) => verifier.verify(token).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_or_blank_token_is_refused_without_asking_the_verifier() {
        let verifier = MockTokenVerifier::new(); // any call would panic
        assert_eq!(
            authenticate(&verifier, None).await,
            Err(TokenError::Missing)
        );
        assert_eq!(
            authenticate(&verifier, Some("  ")).await,
            Err(TokenError::Missing)
        );
    }

    #[tokio::test]
    async fn a_present_token_is_for_the_verifier_to_judge() {
        let mut verifier = MockTokenVerifier::new();
        verifier
            .expect_verify()
            .withf(|t| t == "abc")
            .returning(|_| Ok(Identity::new(Principal::parse("alice").unwrap())));
        assert_eq!(
            authenticate(&verifier, Some(" abc "))
                .await
                .unwrap()
                .principal
                .as_str(),
            "alice"
        );
    }

    #[test]
    fn only_missing_and_expired_tokens_ask_for_a_new_one() {
        assert!(TokenError::Missing.asks_for_a_new_token());
        assert!(TokenError::Expired.asks_for_a_new_token());
        assert!(!TokenError::BadSignature.asks_for_a_new_token());
        assert!(!TokenError::WrongAudience.asks_for_a_new_token());
    }
}
