//! The authorizer's configuration, from the environment or the local gateway's flags.

use std::time::Duration;

use crate::settings::{self, Setting};

use super::jwks::{JwksSource, JwksSourceError};
use super::jwt::{Audience, JwtVerifier, Keys, VerifierError};

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub jwks_url: Option<String>,
    pub secret: Option<String>,
    pub issuer: Option<String>,
    /// Checked against the `aud` claim.
    pub audience: Option<String>,
    /// Cognito access tokens: checked against the `client_id` claim, with `token_use` = `access`.
    pub client_id: Option<String>,
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
    #[error(transparent)]
    Setting(crate::config::ConfigError),
    #[error(
        "set JWT_AUDIENCE (tokens with an `aud` claim) or JWT_CLIENT_ID (Cognito access tokens), not both"
    )]
    TwoAudiences,
    #[error(transparent)]
    Jwks(#[from] JwksSourceError),
    #[error(transparent)]
    Verifier(#[from] VerifierError),
}

impl AuthConfig {
    pub fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Every variable, its bounds and default, is declared in [`crate::settings`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let text = |setting: &Setting| get(setting.name);
        let seconds = |setting: &Setting| {
            setting
                .parsed::<u64>(&get, false)
                .map(Duration::from_secs)
                .map_err(AuthConfigError::Setting)
        };
        let config = Self {
            jwks_url: text(&settings::JWKS_URL),
            secret: text(&settings::JWT_SECRET),
            issuer: text(&settings::JWT_ISSUER),
            audience: text(&settings::JWT_AUDIENCE),
            client_id: text(&settings::JWT_CLIENT_ID),
            leeway: seconds(&settings::JWT_LEEWAY_SECONDS)?,
            jwks_refresh: seconds(&settings::JWKS_REFRESH_SECONDS)?,
        };
        config.verifier().map(|_| config.clone())
    }

    /// Whether a secret or a JWKS URL is configured: without either, authentication is off.
    pub fn is_on(get: impl Fn(&str) -> Option<String>) -> bool {
        [&settings::JWKS_URL, &settings::JWT_SECRET]
            .iter()
            .any(|setting| get(setting.name).is_some_and(|v| !v.trim().is_empty()))
    }

    fn audience(&self) -> Result<Option<Audience>, AuthConfigError> {
        match (&self.audience, &self.client_id) {
            (Some(_), Some(_)) => Err(AuthConfigError::TwoAudiences),
            (Some(aud), None) => Ok(Some(Audience::Aud(aud.clone()))),
            (None, Some(client_id)) => Ok(Some(Audience::CognitoClientId(client_id.clone()))),
            (None, None) => Ok(None),
        }
    }

    /// The verifier this configuration describes: JWKS when a URL is given, else the secret.
    pub fn verifier(&self) -> Result<JwtVerifier, AuthConfigError> {
        let keys = match (&self.jwks_url, &self.secret) {
            (Some(url), _) => Keys::Jwks(Box::new(JwksSource::new(url, self.jwks_refresh)?)),
            (None, Some(secret)) if secret.len() >= 32 => Keys::Secret(secret.as_bytes().to_vec()),
            (None, Some(_)) => return Err(AuthConfigError::WeakSecret),
            (None, None) => return Err(AuthConfigError::NoKeys),
        };
        Ok(JwtVerifier::new(
            keys,
            self.issuer.clone(),
            self.audience()?,
            self.leeway,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const JWKS: &str =
        "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x/.well-known/jwks.json";
    const SECRET: &str = "a-secret-that-is-at-least-32-bytes-long";

    fn config(vars: &[(&str, &str)]) -> Result<AuthConfig, AuthConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn a_jwks_without_an_issuer_or_an_audience_does_not_start() {
        let incomplete = [
            vec![("JWKS_URL", JWKS)],
            vec![("JWKS_URL", JWKS), ("JWT_ISSUER", "https://issuer")],
            vec![("JWKS_URL", JWKS), ("JWT_AUDIENCE", "app")],
            vec![("JWKS_URL", JWKS), ("JWT_CLIENT_ID", "client")],
        ];
        for vars in incomplete {
            let error = config(&vars).unwrap_err();
            assert!(
                matches!(
                    error,
                    AuthConfigError::Verifier(VerifierError::JwksWithoutIssuerOrAudience)
                ),
                "{vars:?}: {error}"
            );
            assert!(error.to_string().contains("JWT_CLIENT_ID"), "{error}");
        }
    }

    #[test]
    fn a_jwks_starts_with_an_issuer_and_either_an_audience_or_a_client_id() {
        for audience in ["JWT_AUDIENCE", "JWT_CLIENT_ID"] {
            let vars = [
                ("JWKS_URL", JWKS),
                ("JWT_ISSUER", "https://issuer"),
                (audience, "app"),
            ];
            assert!(config(&vars).is_ok(), "{audience}");
        }
        let both = config(&[
            ("JWKS_URL", JWKS),
            ("JWT_ISSUER", "https://issuer"),
            ("JWT_AUDIENCE", "app"),
            ("JWT_CLIENT_ID", "app"),
        ]);
        assert!(
            matches!(both, Err(AuthConfigError::TwoAudiences)),
            "{both:?}"
        );
    }

    #[test]
    fn a_jwks_url_over_plain_http_to_another_host_does_not_start() {
        let error = config(&[
            ("JWKS_URL", "http://issuer.example/jwks.json"),
            ("JWT_ISSUER", "https://issuer"),
            ("JWT_AUDIENCE", "app"),
        ])
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("JWKS_URL = \"http://issuer.example"),
            "{error}"
        );
    }

    #[test]
    fn a_shared_secret_still_starts_without_an_issuer_or_an_audience() {
        assert!(config(&[("JWT_SECRET", SECRET)]).is_ok());
    }

    #[test]
    fn every_number_of_seconds_out_of_its_range_stops_start_up_naming_the_variable() {
        let table = [
            ("JWT_LEEWAY_SECONDS", "301", "between 0 and 300"),
            ("JWT_LEEWAY_SECONDS", "-1", "between 0 and 300"),
            ("JWT_LEEWAY_SECONDS", "soon", "between 0 and 300"),
            ("JWKS_REFRESH_SECONDS", "59", "between 60 and 86400"),
            ("JWKS_REFRESH_SECONDS", "86401", "between 60 and 86400"),
            (
                "JWKS_REFRESH_SECONDS",
                "18446744073709551616",
                "between 60 and 86400",
            ),
        ];
        for (name, value, range) in table {
            let error = config(&[("JWT_SECRET", SECRET), (name, value)]).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{name} = {value:?}")) && message.contains(range),
                "{message}"
            );
        }
        for (name, value) in [
            ("JWT_LEEWAY_SECONDS", "0"),
            ("JWT_LEEWAY_SECONDS", "300"),
            ("JWKS_REFRESH_SECONDS", "60"),
            ("JWKS_REFRESH_SECONDS", "86400"),
        ] {
            assert!(config(&[("JWT_SECRET", SECRET), (name, value)]).is_ok());
        }
    }
}
