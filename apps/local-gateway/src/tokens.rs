//! The authorizer the flags turn on, and tokens it accepts for trying auth locally.

use adapters::auth::{AuthConfig, AuthConfigError};
use adapters::settings;
use domain::TokenVerifier;
use std::sync::Arc;

use crate::authorizer::{Authorizer, InProcess};
use crate::flags::Options;

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
        Ok(self
            .token_verifier()?
            .map(|verifier| Arc::new(InProcess(verifier)) as Arc<dyn Authorizer>))
    }

    /// The authorizer's verifier, which also checks a `reauth`'s token; `None` with auth off.
    pub(crate) fn token_verifier(&self) -> Result<Option<Arc<dyn TokenVerifier>>, AuthConfigError> {
        if !self.auth_is_on() {
            return Ok(None);
        }
        Ok(Some(Arc::new(self.auth_config()?.verifier()?)))
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
            "exp": now + self.mint_ttl_secs,
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
