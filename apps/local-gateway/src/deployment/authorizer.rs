//! The REQUEST authorizer function, as API Gateway runs it: when an identity source is missing
//! or empty, the client gets 401 and the function is never invoked (with no result cache, as
//! WebSocket APIs have none, every `$connect` invokes it); an error whose message is
//! `Unauthorized` is a 401; any other failure a 500; an answer is read by
//! [`crate::authorizer::decide`].

use async_trait::async_trait;
use serde_json::Value;

use crate::authorizer::{Authorizer, AuthorizerFailure};
use crate::lambda::{Functions, InvokeError};

/// Where an identity comes from, as the template's `IdentitySource` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    /// `route.request.querystring.NAME`
    Query(String),
    /// `route.request.header.NAME` (names compare case-insensitively)
    Header(String),
    /// `stageVariables.NAME`
    StageVariable(String),
    /// `context.NAME`
    Context(String),
}

impl IdentitySource {
    pub fn parse(source: &str) -> Result<Self, String> {
        let named = |prefix: &str| {
            source
                .strip_prefix(prefix)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        };
        named("route.request.querystring.")
            .map(Self::Query)
            .or_else(|| named("route.request.header.").map(Self::Header))
            .or_else(|| named("stageVariables.").map(Self::StageVariable))
            .or_else(|| named("context.").map(Self::Context))
            .ok_or_else(|| {
                format!(
                    "identity source {source:?} is none of route.request.querystring.*, \
                     route.request.header.*, stageVariables.*, context.*"
                )
            })
    }

    /// Its value in an authorizer event, when present and not empty.
    fn value_in<'a>(&self, event: &'a Value) -> Option<&'a str> {
        let value = match self {
            IdentitySource::Query(name) => event["queryStringParameters"][name].as_str(),
            IdentitySource::Header(name) => event["headers"]
                .as_object()
                .and_then(|headers| {
                    headers
                        .iter()
                        .find(|(header, _)| header.eq_ignore_ascii_case(name))
                })
                .and_then(|(_, value)| value.as_str()),
            IdentitySource::StageVariable(name) => event["stageVariables"][name].as_str(),
            IdentitySource::Context(name) => event["requestContext"][name].as_str(),
        };
        value.filter(|value| !value.is_empty())
    }

    fn describe(&self) -> String {
        match self {
            IdentitySource::Query(name) => format!("route.request.querystring.{name}"),
            IdentitySource::Header(name) => format!("route.request.header.{name}"),
            IdentitySource::StageVariable(name) => format!("stageVariables.{name}"),
            IdentitySource::Context(name) => format!("context.{name}"),
        }
    }
}

pub(crate) struct FunctionAuthorizer {
    functions: Functions,
    function: String,
    sources: Vec<IdentitySource>,
}

impl FunctionAuthorizer {
    pub fn new(functions: Functions, function: String, sources: Vec<IdentitySource>) -> Self {
        Self {
            functions,
            function,
            sources,
        }
    }
}

#[async_trait]
impl Authorizer for FunctionAuthorizer {
    async fn authorize(&self, event: &Value) -> Result<Value, AuthorizerFailure> {
        if let Some(missing) = self.sources.iter().find(|s| s.value_in(event).is_none()) {
            return Err(AuthorizerFailure::Unauthorized(format!(
                "identity source {} is missing or empty: {} was not invoked",
                missing.describe(),
                self.function
            )));
        }
        match self.functions.invoke(&self.function, event).await {
            Ok(policy) => Ok(policy),
            Err(InvokeError::Failed { message, .. }) if message == "Unauthorized" => Err(
                AuthorizerFailure::Unauthorized(format!("{} answered Unauthorized", self.function)),
            ),
            Err(e) => Err(AuthorizerFailure::Failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identity_sources_are_read_as_the_template_writes_them() {
        assert_eq!(
            IdentitySource::parse("route.request.querystring.token"),
            Ok(IdentitySource::Query("token".into()))
        );
        assert_eq!(
            IdentitySource::parse("route.request.header.Auth"),
            Ok(IdentitySource::Header("Auth".into()))
        );
        assert!(IdentitySource::parse("method.request.querystring.token").is_err());
        assert!(IdentitySource::parse("route.request.header.").is_err());
    }

    #[test]
    fn an_identity_is_found_only_where_its_source_says_and_never_empty() {
        let event = json!({
            "queryStringParameters": {"token": "abc", "empty": ""},
            "headers": {"authorization": "Bearer x"}
        });
        let value = |source: &str| IdentitySource::parse(source).unwrap().value_in(&event);

        assert_eq!(value("route.request.querystring.token"), Some("abc"));
        assert_eq!(value("route.request.querystring.empty"), None);
        assert_eq!(
            value("route.request.header.Authorization"),
            Some("Bearer x")
        );
        assert_eq!(value("route.request.header.token"), None);
        assert_eq!(value("stageVariables.token"), None);
    }

    #[tokio::test]
    async fn a_missing_identity_is_refused_without_invoking_the_function() {
        // No such function: invoking it would fail as a 500, not a 401.
        let authorizer = FunctionAuthorizer::new(
            Functions::new([]),
            "authorizer".into(),
            vec![IdentitySource::Header("Auth".into())],
        );
        let event = json!({"queryStringParameters": {"token": "abc"}, "headers": {}});

        let refused = authorizer.authorize(&event).await.unwrap_err();

        assert!(
            matches!(&refused, AuthorizerFailure::Unauthorized(why) if why.contains("route.request.header.Auth")),
            "{refused:?}"
        );
    }
}
