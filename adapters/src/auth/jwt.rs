//! `TokenVerifier` with the jsonwebtoken crate.

use std::time::Duration;

use async_trait::async_trait;
use domain::{Identity, Principal, RoomGrants, TokenError, TokenVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::jwks::JwksSource;

/// Where the verification keys come from. The algorithms accepted follow from it, so a token
/// signed one way can never be checked the other way (no HS/RS confusion).
pub enum Keys {
    /// HS256 with a shared secret: simple setups and local runs.
    Secret(Vec<u8>),
    /// RS256 or ES256 with the keys of a JWKS document (Cognito, Auth0, ...). Boxed: the source
    /// with its HTTP client and cache is much larger than a secret.
    Jwks(Box<JwksSource>),
}

/// Whom a token must be meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The `aud` claim: OIDC ID tokens, Auth0, Cognito ID tokens (whose `aud` is the app client).
    Aud(String),
    /// Cognito access tokens carry no `aud`: their `client_id` must be this app client and their
    /// `token_use` must be `access`.
    CognitoClientId(String),
}

pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<Audience>,
    leeway: Duration,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Seconds since the epoch; required by the validation.
    exp: u64,
    client_id: Option<String>,
    token_use: Option<String>,
    /// Private rooms the token grants: a list of names or `prefix*` patterns, or one string of
    /// them separated by commas or spaces.
    #[serde(default)]
    rooms: Option<serde_json::Value>,
}

fn grants_from(claim: Option<&serde_json::Value>) -> Result<RoomGrants, TokenError> {
    let malformed = |why: String| TokenError::Malformed(format!("rooms: {why}"));
    let patterns: Vec<&str> = match claim {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(text)) => text.split([',', ' ']).collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| malformed("every entry must be a string".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(malformed("must be a string or a list of strings".into())),
    };
    RoomGrants::parse(patterns).map_err(|e| malformed(e.to_string()))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// An identity provider signs tokens for every application it serves: without these checks,
    /// a token minted for any of them would open this API.
    #[error(
        "a JWKS verifier needs JWT_ISSUER and one of JWT_AUDIENCE (the `aud` claim) or JWT_CLIENT_ID (Cognito access tokens)"
    )]
    JwksWithoutIssuerOrAudience,
}

impl JwtVerifier {
    /// With a JWKS, `issuer` and `audience` are required: the keys of an identity provider sign
    /// the tokens of every application it serves. With a shared secret they are optional.
    pub fn new(
        keys: Keys,
        issuer: Option<String>,
        audience: Option<Audience>,
        leeway: Duration,
    ) -> Result<Self, VerifierError> {
        if matches!(keys, Keys::Jwks(_)) && (issuer.is_none() || audience.is_none()) {
            return Err(VerifierError::JwksWithoutIssuerOrAudience);
        }
        Ok(Self {
            keys,
            issuer,
            audience,
            leeway,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(Audience::Aud(audience)) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Checked on the claims, after the signature.
            Some(Audience::CognitoClientId(_)) | None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// A Cognito access token for another app client, or an ID token where an access token is
    /// expected, is meant for someone else.
    fn check_client(&self, claims: &Claims) -> Result<(), TokenError> {
        let Some(Audience::CognitoClientId(client_id)) = &self.audience else {
            return Ok(());
        };
        let for_this_client = claims.client_id.as_deref() == Some(client_id.as_str())
            && claims.token_use.as_deref() == Some("access");
        if for_this_client {
            Ok(())
        } else {
            Err(TokenError::WrongAudience)
        }
    }
}

/// Errors of the jsonwebtoken crate, as the domain names them. The token itself never appears.
fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => TokenError::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => {
            TokenError::Malformed(format!("the {claim} claim is required"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Malformed(format!("the {claim} claim is malformed"))
        }
        ErrorKind::Json(_) => TokenError::Malformed("the claims are not the expected JSON".into()),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
            TokenError::Malformed("not three base64url parts".into())
        }
        _ => TokenError::BadSignature,
    }
}

/// `alg: none` and other algorithms the crate does not know fail as a header that does not parse;
/// a readable header naming an `alg` is a refused algorithm, not a malformed token.
fn header_error(token: &str, kind: &ErrorKind) -> TokenError {
    use base64::Engine;
    let names_an_algorithm = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h["alg"].is_string());
    match kind {
        ErrorKind::Json(_) if names_an_algorithm => TokenError::BadSignature,
        other => token_error(other),
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = decode_header(token).map_err(|e| header_error(token, e.kind()))?;
        let (key, algorithm) = match &self.keys {
            Keys::Secret(secret) => {
                if header.alg != Algorithm::HS256 {
                    return Err(TokenError::BadSignature);
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256)
            }
            Keys::Jwks(source) => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(TokenError::BadSignature);
                }
                let kid = header.kid.as_deref().ok_or(TokenError::BadSignature)?;
                let (key, algorithm) = source.key(kid).await?;
                if algorithm != header.alg {
                    return Err(TokenError::BadSignature);
                }
                (key, algorithm)
            }
        };
        let data = decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|e| token_error(e.kind()))?;
        self.check_client(&data.claims)?;
        let principal = Principal::parse(data.claims.sub)
            .map_err(|e| TokenError::Malformed(format!("sub: {e}")))?;
        Ok(Identity {
            principal,
            grants: grants_from(data.claims.rooms.as_ref())?,
            expires_at: Some(domain::Timestamp::from_millis(
                data.claims.exp.saturating_mul(1000),
            )),
        })
    }
}
