//! The authorizer the flags turn on, and tokens it accepts for trying auth locally.

use adapters::auth::{AuthConfig, AuthConfigError};
use adapters::settings;
use domain::TokenVerifier;
use std::sync::Arc;

use crate::authorizer::{Authorizer, InProcess};
use crate::flags::Options;

/// A minted token's lifetime.
const MINTED_TOKEN_LIFETIME_SECS: u64 = 3600;

impl Options {
    /// The authorizer's configuration, from the same settings the authorizer Lambda reads.
    fn auth_config(&self) -> Result<AuthConfig, AuthConfigError> {
        AuthConfig::from_lookup(|name| self.service.get(name))
    }

    /// Whether the authorizer is on: a secret or a JWKS URL is configured.
    pub fn auth_is_on(&self) -> bool {
        AuthConfig::is_on(|name| self.service.get(name))
    }

    /// The authorizer, when a secret or a JWKS URL is configured: off by default for the quick start.
    pub(crate) fn authorizer(&self) -> Result<Option<Arc<dyn Authorizer>>, AuthConfigError> {
        if !self.auth_is_on() {
            return Ok(None);
        }
        let verifier: Arc<dyn TokenVerifier> = Arc::new(self.auth_config()?.verifier()?);
        Ok(Some(Arc::new(InProcess(verifier))))
    }

    /// A token the authorizer accepts, for trying auth locally.
    pub fn minted_token(&self, subject: &str) -> Result<String, Box<dyn std::error::Error>> {
        let secret = self
            .service
            .text(&settings::JWT_SECRET)
            .ok_or("--mint-token needs --jwt-secret (or JWT_SECRET)")?;
        let config = self.auth_config()?;
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
        if let Some(issuer) = &config.issuer {
            claims["iss"] = issuer.clone().into();
        }
        if let Some(audience) = &config.audience {
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
