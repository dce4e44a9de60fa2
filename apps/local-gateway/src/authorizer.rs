//! The `$connect` authorizer as API Gateway applies it: whoever answers (the project's verifier
//! in process, or the deployed `authorizer` function under `--deployment`), the answer is read
//! the same way: an IAM policy that must allow `execute-api:Invoke` on this very `$connect`, a
//! `principalId`, and a context of strings, numbers and booleans within 8 KB, which every later
//! event of the connection carries as `requestContext.authorizer`.

use std::sync::Arc;

use adapters::auth::{AuthorizerError, authorize_json};
use async_trait::async_trait;
use domain::TokenVerifier;
use serde_json::{Map, Value};

/// API Gateway's limit on an authorizer's context, serialized.
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// Who answers a `$connect`'s authorizer event.
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// The authorizer's answer to `event` (an IAM policy), or why there is none.
    async fn authorize(&self, event: &Value) -> Result<Value, AuthorizerFailure>;
}

/// Why an authorizer gave no policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizerFailure {
    /// 401: no identity, or one the authorizer says is missing or expired (`Unauthorized`).
    Unauthorized(String),
    /// 500: the authorizer failed.
    Failed(String),
}

/// The project's verifier, run in process: the default of `cargo run -p local-gateway`.
pub struct InProcess(pub Arc<dyn TokenVerifier>);

#[async_trait]
impl Authorizer for InProcess {
    async fn authorize(&self, event: &Value) -> Result<Value, AuthorizerFailure> {
        authorize_json(self.0.as_ref(), event)
            .await
            .map_err(|e| match e {
                AuthorizerError::Unauthorized => {
                    AuthorizerFailure::Unauthorized("the token is missing or expired".into())
                }
                e => AuthorizerFailure::Failed(e.to_string()),
            })
    }
}

/// What API Gateway makes of an authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Connect, with this `requestContext.authorizer` (the context and `principalId`).
    Allowed(Value),
    /// 403: the policy does not allow this `$connect`.
    Forbidden(String),
    /// 500: an answer API Gateway cannot use.
    Invalid(String),
}

/// Reads `policy` as API Gateway does for the `$connect` at `method_arn`: an explicit Deny that
/// matches wins, then an Allow that matches; nothing matching is a Deny.
pub fn decide(policy: &Value, method_arn: &str) -> Decision {
    let Some(principal) = policy["principalId"].as_str() else {
        return Decision::Invalid("the answer has no principalId string".into());
    };
    let statements = match &policy["policyDocument"]["Statement"] {
        Value::Array(statements) => statements.iter().collect::<Vec<_>>(),
        statement @ Value::Object(_) => vec![statement],
        _ => return Decision::Invalid("the answer has no policyDocument.Statement".into()),
    };
    let applies = |statement: &Value| {
        matches_any(&statement["Action"], "execute-api:Invoke")
            && matches_any(&statement["Resource"], method_arn)
    };
    let effect = |wanted: &str| {
        statements
            .iter()
            .any(|s| s["Effect"].as_str() == Some(wanted) && applies(s))
    };
    if effect("Deny") {
        return Decision::Forbidden("the policy denies this $connect".into());
    }
    if !effect("Allow") {
        return Decision::Forbidden(format!(
            "no statement allows execute-api:Invoke on {method_arn}"
        ));
    }
    let mut context = match &policy["context"] {
        Value::Null => Map::new(),
        Value::Object(context) => context.clone(),
        _ => return Decision::Invalid("the context is not an object".into()),
    };
    if let Some((key, _)) = context
        .iter()
        .find(|(_, value)| !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)))
    {
        return Decision::Invalid(format!(
            "context.{key} is not a string, a number or a boolean"
        ));
    }
    let size = Value::Object(context.clone()).to_string().len();
    if size > MAX_CONTEXT_BYTES {
        return Decision::Invalid(format!(
            "the context is {size} bytes, over API Gateway's {MAX_CONTEXT_BYTES}"
        ));
    }
    context.insert("principalId".into(), Value::String(principal.to_owned()));
    Decision::Allowed(Value::Object(context))
}

/// Whether `patterns` (one string or a list, with IAM's `*` and `?` wildcards) match `value`.
fn matches_any(patterns: &Value, value: &str) -> bool {
    match patterns {
        Value::String(pattern) => wildcard_match(pattern, value),
        Value::Array(patterns) => patterns
            .iter()
            .any(|p| p.as_str().is_some_and(|p| wildcard_match(p, value))),
        _ => false,
    }
}

/// IAM's matching: `*` any run of characters, `?` any one; actions case-insensitively.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (pattern, value): (Vec<char>, Vec<char>) = if value.starts_with("arn:") {
        (pattern.chars().collect(), value.chars().collect())
    } else {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    };
    // Greedy matching with one backtrack point: linear in practice, never exponential.
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, v));
            p += 1;
        } else if let Some((star_p, star_v)) = star {
            p = star_p + 1;
            v = star_v + 1;
            star = Some((star_p, star_v + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CONNECT: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/ci/$connect";

    fn policy(effect: &str, resource: Value) -> Value {
        json!({
            "principalId": "alice",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
            ]},
            "context": {"rooms": "team-1:*", "admin": false, "level": 3}
        })
    }

    #[test]
    fn an_allow_on_this_connect_connects_with_the_context_and_the_principal() {
        let decision = decide(&policy("Allow", json!(CONNECT)), CONNECT);
        assert_eq!(
            decision,
            Decision::Allowed(json!({
                "rooms": "team-1:*", "admin": false, "level": 3, "principalId": "alice"
            }))
        );
    }

    #[test]
    fn an_allow_on_another_resource_or_action_is_forbidden() {
        let other = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect";
        assert!(matches!(
            decide(&policy("Allow", json!(other)), CONNECT),
            Decision::Forbidden(_)
        ));
        let mut wrong_action = policy("Allow", json!(CONNECT));
        wrong_action["policyDocument"]["Statement"][0]["Action"] =
            json!("execute-api:ManageConnections");
        assert!(matches!(
            decide(&wrong_action, CONNECT),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        let any_stage = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/$connect";
        assert!(matches!(
            decide(
                &policy("Allow", json!(["arn:aws:s3:::x", any_stage])),
                CONNECT
            ),
            Decision::Allowed(_)
        ));
        assert!(wildcard_match("execute-api:*", "execute-api:Invoke"));
        assert!(wildcard_match("EXECUTE-API:invoke", "execute-api:Invoke"));
        assert!(wildcard_match("arn:aws:execute-api:?s-east-1:*", CONNECT));
        assert!(!wildcard_match(
            "arn:aws:execute-api:us-east-1:*/PROD/*",
            CONNECT.replace("ci", "prod").as_str()
        ));
        assert!(wildcard_match("*a*b*c", "xxaxxbxxc"));
        assert!(!wildcard_match("*a*b*c", "xxaxxcxxb"));
    }

    #[test]
    fn a_matching_deny_wins_over_an_allow() {
        let mut both = policy("Allow", json!(CONNECT));
        both["policyDocument"]["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Action": "execute-api:*", "Effect": "Deny", "Resource": "*"}));
        assert!(matches!(decide(&both, CONNECT), Decision::Forbidden(_)));
    }

    #[test]
    fn a_context_api_gateway_cannot_carry_is_an_error_not_a_connection() {
        let mut nested = policy("Allow", json!(CONNECT));
        nested["context"]["rooms"] = json!(["a", "b"]);
        assert!(
            matches!(decide(&nested, CONNECT), Decision::Invalid(m) if m.contains("context.rooms"))
        );
        let mut large = policy("Allow", json!(CONNECT));
        large["context"]["rooms"] = json!("x".repeat(MAX_CONTEXT_BYTES));
        assert!(matches!(decide(&large, CONNECT), Decision::Invalid(m) if m.contains("8192")));
        let mut anonymous = policy("Allow", json!(CONNECT));
        anonymous["principalId"] = Value::Null;
        assert!(matches!(decide(&anonymous, CONNECT), Decision::Invalid(_)));
    }
}
