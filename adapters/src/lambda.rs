//! The Lambda runtime loop around the shared handler, with metrics flushed as CloudWatch Embedded
//! Metric Format after each invocation.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use domain::{ClientNotifier, ConnectionRepository, Timestamp};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::Instrument;

use crate::apigateway::inbound::{InboundError, Route, WebSocketEvent, WebSocketHandler};
pub use crate::lambda_fanout::{FANOUT_FUNCTION, deliver_batch, serve_delivery_jobs};
pub use crate::lambda_metrics::LambdaMetrics;

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
    let metrics = Arc::new(LambdaMetrics::from_env(route.function_name())?);
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, metrics) = (handler.clone(), metrics.clone());
        async move {
            let request_id = event.context.request_id;
            let deadline = Timestamp::from_millis(event.context.deadline);
            let work = invoke(&handler, route, event.payload, Some(deadline));
            measured(&metrics, &request_id, std::io::stdout(), work).await
        }
    }))
    .await
}

/// One invocation of a WebSocket route's function.
pub async fn invoke<R, N>(
    handler: &WebSocketHandler<R, N>,
    route: Route,
    payload: Value,
    deadline: Option<Timestamp>,
) -> Result<ApiGatewayProxyResponse, Diagnostic>
where
    R: ConnectionRepository,
    N: ClientNotifier,
{
    let event = match WebSocketEvent::from_json(payload) {
        Ok(event) if event.route != route => Err(InboundError::BadEvent(format!(
            "this function serves {route:?} but got a {:?} event: check serverless.yml",
            event.route
        ))),
        other => other,
    };
    let event = match event {
        Ok(event) => WebSocketEvent { deadline, ..event },
        Err(e) => return Err(failed(e)),
    };
    // The failure is logged in a span of its own: the handler's span has closed by then, and the
    // line must still say which connection and route failed.
    let span = tracing::error_span!(
        "event",
        connectionId = %event.connection_id,
        routeKey = %event.route_key
    );
    handler
        .handle(event)
        .instrument(span.clone())
        .await
        .map_err(|e| {
            let _entered = span.enter();
            failed(e)
        })
}

fn failed(e: InboundError) -> Diagnostic {
    tracing::error!(errorType = e.kind(), error = %e, "invocation failed");
    Diagnostic {
        error_type: e.kind().to_string(),
        error_message: e.to_string(),
    }
}

/// Runs `work` as one invocation, in a span that gives each of its log lines the Lambda request
/// id: a cold start counted on the first, and what it recorded written to `out` as EMF lines once
/// it is done (before the runtime answers, so a frozen instance loses nothing). A failed write
/// costs metrics, never the invocation.
pub async fn measured<T>(
    metrics: &LambdaMetrics,
    request_id: &str,
    out: impl Write,
    work: impl Future<Output = T>,
) -> T {
    let span = tracing::info_span!("invocation", lambdaRequestId = request_id);
    async move {
        metrics.invocation_started();
        let result = work.await;
        if let Err(e) = metrics.flush(request_id, out) {
            tracing::warn!(error = %e, "could not write metrics");
        }
        result
    }
    .instrument(span)
    .await
}

/// Runs the `$connect` REQUEST authorizer. `Unauthorized` must reach API Gateway as exactly that
/// error message for it to answer 401.
pub async fn serve_authorizer<V>(verifier: V) -> Result<(), lambda_runtime::Error>
where
    V: domain::TokenVerifier + 'static,
{
    let metrics = Arc::new(LambdaMetrics::from_env(AUTHORIZER_FUNCTION)?);
    let verifier = Arc::new(verifier);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (verifier, metrics) = (verifier.clone(), metrics.clone());
        async move {
            let request_id = event.context.request_id;
            let work = authorize(verifier.as_ref(), &event.payload);
            measured(&metrics, &request_id, std::io::stdout(), work).await
        }
    }))
    .await
}

/// The authorizer function's name in metrics.
pub const AUTHORIZER_FUNCTION: &str = "authorizer";

/// One invocation of the authorizer.
pub async fn authorize(
    verifier: &dyn domain::TokenVerifier,
    payload: &Value,
) -> Result<Value, Diagnostic> {
    crate::auth::authorize_json(verifier, payload)
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

/// A Lambda main's exit: a start-up failure (a missing setting, a bad JWKS URL) logged once as a
/// JSON line with its message and causes, where returning the error from `main` would print its
/// `Debug` form (`MissingVar("TABLE_NAME")`) to stderr.
pub fn exit_code(outcome: Result<(), lambda_runtime::Error>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %error_chain(e.as_ref()), "the function could not start");
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its sources, outermost first: "could not read X: file not found".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: a source chain is a handful of links, and a cyclic one must not loop forever.
    for _ in 0..16 {
        let Some(cause) = source else { break };
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
