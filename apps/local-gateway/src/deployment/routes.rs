//! The routes as API Gateway invokes them: `$connect` and `$disconnect` by event type, a message
//! by the route selection expression (`$request.body.action`): the route of that name if there
//! is one, else `$default`, else the client is told "Forbidden". Each invocation is the function's
//! own, with its own timeout; API Gateway stops waiting at its integration timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use domain::Timestamp;
use serde_json::Value;

use crate::invoker::{EventHandler, IntegrationError};
use crate::lambda::Functions;

pub(crate) struct FunctionRoutes {
    functions: Functions,
    routes: BTreeMap<String, Option<String>>,
    /// The body field route selection reads (`action`).
    selection_field: String,
}

/// What a route resolves to.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// This route, invoking this function.
    Function { route: &'a str, function: &'a str },
    /// A route with no Lambda behind it: API Gateway answers for it (a `$connect` connects).
    Nothing,
}

impl FunctionRoutes {
    pub fn new(
        functions: Functions,
        routes: BTreeMap<String, Option<String>>,
        selection_field: String,
    ) -> Self {
        Self {
            functions,
            routes,
            selection_field,
        }
    }

    /// The route an event takes, as API Gateway selects it.
    fn select<'a>(&'a self, event: &Value) -> Result<Target<'a>, IntegrationError> {
        let context = &event["requestContext"];
        let wanted = match context["eventType"].as_str() {
            Some("CONNECT") => "$connect".to_owned(),
            Some("DISCONNECT") => "$disconnect".to_owned(),
            _ => self.selected(event["body"].as_str().unwrap_or_default()),
        };
        let message = !matches!(wanted.as_str(), "$connect" | "$disconnect");
        let found = self.routes.get_key_value(wanted.as_str()).or_else(|| {
            message
                .then(|| self.routes.get_key_value("$default"))
                .flatten()
        });
        match found {
            Some((route, Some(function))) => Ok(Target::Function { route, function }),
            Some((_, None)) => Ok(Target::Nothing),
            // No `$connect` or `$disconnect` route: API Gateway connects and disconnects alone.
            None if !message => Ok(Target::Nothing),
            None => Err(IntegrationError::NoRoute { selected: wanted }),
        }
    }

    /// The selection expression's value for a message body: a string there, else `$default`.
    fn selected(&self, body: &str) -> String {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        parsed
            .as_ref()
            .and_then(|body| body.get(&self.selection_field))
            .and_then(Value::as_str)
            .map_or_else(|| "$default".to_owned(), str::to_owned)
    }
}

#[async_trait]
impl EventHandler for FunctionRoutes {
    async fn handle_json(
        &self,
        mut event: Value,
        deadline: Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        let (route, function) = match self.select(&event)? {
            Target::Function { route, function } => (route.to_owned(), function.to_owned()),
            Target::Nothing => {
                let mut answered = ApiGatewayProxyResponse::default();
                answered.status_code = 200;
                return Ok(answered);
            }
        };
        event["requestContext"]["routeKey"] = Value::String(route);
        // The function runs to its own end even when API Gateway stops waiting, as in AWS.
        let functions = self.functions.clone();
        let invocation = tokio::spawn(async move { functions.invoke(&function, &event).await });
        let wait = Duration::from_millis(
            deadline
                .as_millis()
                .saturating_sub(crate::clock::now().as_millis()),
        );
        let answer = match tokio::time::timeout(wait, invocation).await {
            Err(_) => return Err(IntegrationError::TimedOut),
            Ok(Err(panicked)) => {
                return Err(IntegrationError::MalformedResponse(panicked.to_string()));
            }
            Ok(Ok(answer)) => answer?,
        };
        serde_json::from_value(answer)
            .map_err(|e| IntegrationError::MalformedResponse(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn routes(pairs: &[(&str, Option<&str>)]) -> FunctionRoutes {
        FunctionRoutes::new(
            Functions::new([]),
            pairs
                .iter()
                .map(|(key, function)| (key.to_string(), function.map(str::to_owned)))
                .collect(),
            "action".into(),
        )
    }

    fn message(body: &str) -> Value {
        json!({"requestContext": {"eventType": "MESSAGE", "routeKey": "$default"}, "body": body})
    }

    #[test]
    fn a_message_takes_the_route_its_action_names_else_default() {
        let routes = routes(&[
            ("$default", Some("default")),
            ("join", Some("joiner")),
            ("$connect", Some("connect")),
        ]);
        let target = |body: &str| routes.select(&message(body)).unwrap();

        assert_eq!(
            target(r#"{"action":"join","room":"a"}"#),
            Target::Function {
                route: "join",
                function: "joiner"
            }
        );
        for body in [
            r#"{"action":"send"}"#,
            r#"{"action":7}"#,
            "not json",
            r#"{"action":"$connect"}"#,
        ] {
            let expected = if body.contains("$connect") {
                Target::Function {
                    route: "$connect",
                    function: "connect",
                }
            } else {
                Target::Function {
                    route: "$default",
                    function: "default",
                }
            };
            assert_eq!(target(body), expected, "{body}");
        }
    }

    #[test]
    fn without_a_default_route_an_unmatched_message_is_forbidden() {
        let routes = routes(&[("$connect", Some("connect")), ("$defualt", Some("default"))]);

        let refused = routes.select(&message(r#"{"action":"send"}"#)).unwrap_err();

        assert!(matches!(&refused, IntegrationError::NoRoute { selected } if selected == "send"));
        assert_eq!(refused.client_message(), "Forbidden");
    }

    #[test]
    fn connect_and_disconnect_without_routes_need_no_function() {
        let routes = routes(&[("$default", Some("default"))]);
        for event_type in ["CONNECT", "DISCONNECT"] {
            let event = json!({"requestContext": {"eventType": event_type}});
            assert_eq!(routes.select(&event).unwrap(), Target::Nothing);
        }
    }
}
