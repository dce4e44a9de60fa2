//! The authorizer's configuration, from the environment or the local gateway's flags.

use std::time::Duration;

use super::jwks::JwksSource;
use super::jwt::{JwtVerifier, Keys};

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub jwks_url: Option<String>,
    pub secret: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub jwks_refresh: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "set JWKS_URL (RS256/ES256, e.g. a Cognito user pool's .well-known/jwks.json) or JWT_SECRET (HS256)"
    )]
    NoKeys,
    #[error("JWT_SECRET must be at least 32 bytes (HS256 is only as strong as its secret)")]
    WeakSecret,
    #[error("{name} = {value:?} is not a number of seconds")]
    BadSeconds { name: &'static str, value: String },
}

impl AuthConfig {
    pub fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let seconds = |name: &'static str, default: u64| match non_empty(name) {
            None => Ok(Duration::from_secs(default)),
            Some(value) => value
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| AuthConfigError::BadSeconds { name, value }),
        };
        let config = Self {
            jwks_url: non_empty("JWKS_URL"),
            secret: non_empty("JWT_SECRET"),
            issuer: non_empty("JWT_ISSUER"),
            audience: non_empty("JWT_AUDIENCE"),
            leeway: seconds("JWT_LEEWAY_SECONDS", 30)?,
            jwks_refresh: seconds("JWKS_REFRESH_SECONDS", 3600)?,
        };
        config.verifier().map(|_| config.clone())
    }

    /// The verifier this configuration describes: JWKS when a URL is given, else the secret.
    pub fn verifier(&self) -> Result<JwtVerifier, AuthConfigError> {
        let keys = match (&self.jwks_url, &self.secret) {
            (Some(url), _) => Keys::Jwks(JwksSource::new(url.clone(), self.jwks_refresh)),
            (None, Some(secret)) if secret.len() >= 32 => Keys::Secret(secret.as_bytes().to_vec()),
            (None, Some(_)) => return Err(AuthConfigError::WeakSecret),
            (None, None) => return Err(AuthConfigError::NoKeys),
        };
        Ok(JwtVerifier::new(
            keys,
            self.issuer.clone(),
            self.audience.clone(),
            self.leeway,
        ))
    }
}
