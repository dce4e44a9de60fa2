//! The authorizer the flags turn on, and tokens it accepts for trying auth locally.

use std::sync::Arc;
use std::time::Duration;

use adapters::auth::{AuthConfig, AuthConfigError};
use domain::TokenVerifier;

use crate::Options;

/// A minted token's lifetime.
const MINTED_TOKEN_LIFETIME_SECS: u64 = 3600;
/// Clock skew tolerated on `exp` and `nbf`, as the authorizer Lambda allows.
const CLOCK_LEEWAY: Duration = Duration::from_secs(30);
/// How often the JWKS document is fetched again, besides on an unknown `kid`.
const JWKS_REFRESH: Duration = Duration::from_secs(3600);

impl Options {
    fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            jwks_url: self.jwks_url.clone(),
            secret: self.jwt_secret.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            client_id: self.jwt_client_id.clone(),
            leeway: CLOCK_LEEWAY,
            jwks_refresh: JWKS_REFRESH,
        }
    }

    /// The authorizer, when a secret or a JWKS URL is configured: off by default for the quick start.
    pub(crate) fn authorizer(&self) -> Result<Option<Arc<dyn TokenVerifier>>, AuthConfigError> {
        if self.jwt_secret.is_none() && self.jwks_url.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(self.auth_config().verifier()?)))
    }

    /// A token the authorizer accepts, for trying auth locally.
    pub fn minted_token(&self, subject: &str) -> Result<String, Box<dyn std::error::Error>> {
        let secret = self
            .jwt_secret
            .as_deref()
            .ok_or("--mint-token needs --jwt-secret (or JWT_SECRET)")?;
        self.auth_config().verifier()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut claims = serde_json::json!({
            "sub": subject,
            "iat": now,
            "exp": now + MINTED_TOKEN_LIFETIME_SECS,
        });
        if let Some(rooms) = &self.mint_rooms {
            let grants =
                domain::RoomGrants::decode(rooms).map_err(|e| format!("--mint-rooms: {e}"))?;
            claims["rooms"] = grants.encode().into();
        }
        if let Some(issuer) = &self.jwt_issuer {
            claims["iss"] = issuer.clone().into();
        }
        if let Some(audience) = &self.jwt_audience {
            claims["aud"] = audience.clone().into();
        }
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &key,
        )?)
    }
}
