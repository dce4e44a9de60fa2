//! The REQUEST authorizer for `$connect`: API Gateway's event in, an IAM policy out.
//!
//! Answers: a missing or expired token -> the error `Unauthorized` (API Gateway: 401, the client
//! should fetch a new token); any other bad token -> a Deny policy (403); a good one -> Allow on
//! this very `$connect` method ARN, with the principal as `principalId`, which API Gateway then
//! puts in `requestContext.authorizer` of every later event of the connection.

use domain::auth::authenticate;
use domain::{Identity, TokenError, TokenVerifier};

use crate::metrics::{self, Decision};

/// The authorizer context key that carries a connection's room grants to every later event.
pub const AUTHORIZER_GRANTS_KEY: &str = "rooms";
/// The authorizer context key that carries the token's `exp` (seconds) to every later event.
pub const AUTHORIZER_EXPIRY_KEY: &str = "exp";
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// The exact message API Gateway turns into a 401.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("malformed authorizer event: {0}")]
    BadEvent(String),
    /// The keys could not be had: API Gateway answers 500, and the client may retry.
    #[error("cannot verify tokens right now: {0}")]
    Unavailable(TokenError),
}

/// The token from `route.request.querystring.token`: browsers cannot set headers on a WebSocket.
pub fn token_from_event(event: &Value) -> Option<&str> {
    event["queryStringParameters"]["token"].as_str()
}

pub async fn authorize_json(
    verifier: &dyn TokenVerifier,
    event: &Value,
) -> Result<Value, AuthorizerError> {
    let Some(method_arn) = event["methodArn"].as_str() else {
        metrics::authorizer_refused(Decision::Error, metrics::REASON_BAD_EVENT);
        return Err(AuthorizerError::BadEvent("methodArn is missing".into()));
    };
    match authenticate(verifier, token_from_event(event)).await {
        Ok(identity) => {
            metrics::authorizer_allowed();
            // Never the principal itself: a `sub` may be an e-mail address, personal data every
            // log reader would see. The hash tells one user's connections apart all the same.
            let principal_hash = crate::telemetry::principal_hash(&identity.principal);
            tracing::info!(principalHash = %principal_hash, "connection allowed");
            Ok(policy(
                identity.principal.as_str(),
                "Allow",
                method_arn,
                Some(&identity),
            ))
        }
        Err(e @ TokenError::KeysUnavailable(_)) => {
            metrics::authorizer_refused(Decision::Error, e.kind());
            Err(AuthorizerError::Unavailable(e))
        }
        Err(e) if e.asks_for_a_new_token() => {
            metrics::authorizer_refused(Decision::Unauthorized, e.kind());
            tracing::info!(reason = e.kind(), "connection refused: 401");
            Err(AuthorizerError::Unauthorized)
        }
        Err(e) => {
            metrics::authorizer_refused(Decision::Deny, e.kind());
            tracing::info!(reason = e.kind(), "connection refused: 403");
            Ok(policy("unauthenticated", "Deny", method_arn, None))
        }
    }
}

fn policy(principal: &str, effect: &str, method_arn: &str, subject: Option<&Identity>) -> Value {
    let mut response = json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": effect,
                "Resource": method_arn,
            }],
        },
    });
    if let Some(subject) = subject {
        // API Gateway caps the context at 8 KB and takes only strings, numbers and booleans: the
        // subject is at most 256 bytes, the grants one string of at most 2 KB.
        response["context"] = json!({ "sub": subject.principal.as_str() });
        if let Some(expires_at) = subject.expires_at {
            // The token's `exp`, in seconds as JWT writes it: the connection remembers it.
            response["context"][AUTHORIZER_EXPIRY_KEY] = json!(expires_at.as_secs_ceil());
        }
        if !subject.grants.is_empty() {
            response["context"][AUTHORIZER_GRANTS_KEY] = json!(subject.grants.encode());
        }
    }
    response
}
