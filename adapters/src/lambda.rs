//! The Lambda runtime loop around the shared handler.

use std::sync::Arc;

use domain::{ClientNotifier, ConnectionRepository};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::apigateway::inbound::{InboundError, Route, WebSocketEvent, WebSocketHandler};

/// Runs `handler` for every invocation of a function deployed for `route`; an event for another
/// route is a wiring mistake in `serverless.yml`, refused loudly. Errors become a `Diagnostic`
/// whose `errorType` says which kind of failure it was; nothing here panics on client data.
pub async fn serve<R, N>(
    handler: WebSocketHandler<R, N>,
    route: Route,
) -> Result<(), lambda_runtime::Error>
where
    R: ConnectionRepository + 'static,
    N: ClientNotifier + 'static,
{
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move {
            let handled = match WebSocketEvent::from_json(event.payload) {
                Ok(event) if event.route != route => Err(InboundError::BadEvent(format!(
                    "this function serves {route:?} but got a {:?} event: check serverless.yml",
                    event.route
                ))),
                Ok(event) => handler.handle(event).await,
                Err(e) => Err(e),
            };
            handled.map_err(|e| {
                tracing::error!(errorType = e.kind(), error = %e, "invocation failed");
                Diagnostic {
                    error_type: e.kind().to_string(),
                    error_message: e.to_string(),
                }
            })
        }
    }))
    .await
}

/// Runs the `$connect` REQUEST authorizer. `Unauthorized` must reach API Gateway as exactly that
/// error message for it to answer 401.
pub async fn serve_authorizer<V>(verifier: V) -> Result<(), lambda_runtime::Error>
where
    V: domain::TokenVerifier + 'static,
{
    let verifier = Arc::new(verifier);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let verifier = verifier.clone();
        async move {
            crate::auth::authorize_json(verifier.as_ref(), &event.payload)
                .await
                .map_err(|e| {
                    let error_type = match e {
                        crate::auth::AuthorizerError::Unauthorized => "Unauthorized",
                        crate::auth::AuthorizerError::BadEvent(_) => "BadEvent",
                        crate::auth::AuthorizerError::Unavailable(_) => "KeysUnavailable",
                    };
                    Diagnostic {
                        error_type: error_type.to_string(),
                        error_message: e.to_string(),
                    }
                })
        }
    }))
    .await
}
