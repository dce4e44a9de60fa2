//! Authentication adapters: JWT verification (HS256 secret or a JWKS) and the REQUEST authorizer
//! event mapping shared by the authorizer Lambda and the local gateway.

mod authorizer;
mod config;
mod jwks;
mod jwt;

pub use authorizer::{
    AUTHORIZER_EXPIRY_KEY, AUTHORIZER_GRANTS_KEY, AuthorizerError, authorize_json, token_from_event,
};
pub use config::{AuthConfig, AuthConfigError};
pub use jwks::{Backoff, InsecureJwksUrl, JwksSource, JwksSourceError, MAX_JWKS_BYTES};
pub use jwt::{Audience, JwtVerifier, Keys, VerifierError};
