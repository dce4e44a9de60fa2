//! The integrations behind the routes, invoked as API Gateway invokes Lambda functions: three
//! functions (`$connect`, `$default`, `$disconnect`), each with its own concurrency, all running
//! the same [`EventHandler`]. Every invocation ends at API Gateway's integration timeout, and is
//! handed to the inspector as a typed record.

use std::sync::Arc;

use adapters::apigateway::inbound::{InboundError, WebSocketHandler};
use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use domain::actions::{Join, Leave, Publish, parse_request};
use domain::connection::API_GATEWAY_INTEGRATION_TIMEOUT;
use domain::{ClientNotifier, ConnectionRepository, Timestamp};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::events::{ConnectionContext, Route};
use crate::inspector::{Inspector, InvocationRecord, shown_event};
use crate::outbox::Close;

/// What answers the routes: the code the Lambdas run, in process, behind one object-safe trait
/// so any store can sit behind it; or, under `--deployment`, the deployed functions themselves.
#[async_trait]
pub trait EventHandler: Send + Sync {
    /// Runs one invocation that ends at `deadline`, as API Gateway's integration timeout (or a
    /// Lambda's) would end it.
    async fn handle_json(
        &self,
        event: Value,
        deadline: Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError>;
}

/// Why a route's integration gave no response, each as API Gateway tells the client.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The handler, in process, failed.
    #[error(transparent)]
    Handler(#[from] InboundError),
    /// The function failed, timed out, crashed or did not start.
    #[error(transparent)]
    Function(#[from] crate::lambda::InvokeError),
    /// The function answered something that is not a Lambda proxy response.
    #[error("the integration's answer is not a proxy response: {0}")]
    MalformedResponse(String),
    /// No route matched the message, and there is no `$default`.
    #[error("no route for {selected:?} and no $default route")]
    NoRoute { selected: String },
    /// API Gateway stopped waiting at its integration timeout (the function may run on).
    #[error("the integration did not answer within API Gateway's integration timeout")]
    TimedOut,
}

impl IntegrationError {
    /// What API Gateway sends the client when a message's integration fails this way.
    pub fn client_message(&self) -> &'static str {
        match self {
            IntegrationError::NoRoute { .. } => "Forbidden",
            IntegrationError::TimedOut => "Endpoint request timed out",
            _ => "Internal server error",
        }
    }
}

#[async_trait]
impl<R, N> EventHandler for WebSocketHandler<R, N>
where
    R: ConnectionRepository + 'static,
    N: ClientNotifier + 'static,
{
    async fn handle_json(
        &self,
        event: Value,
        deadline: Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        Ok(WebSocketHandler::handle_json_until(self, event, deadline).await?)
    }
}

/// What is invoked, as the caller knows it before the event exists.
#[derive(Debug, Clone)]
pub(crate) enum Invocation {
    Connect,
    /// A message, and the action its body names.
    Message(MessageAction),
    /// The socket ended with this close.
    Disconnect(Close),
}

impl Invocation {
    pub fn route(&self) -> Route {
        match self {
            Invocation::Connect => Route::Connect,
            Invocation::Message(_) => Route::Default,
            Invocation::Disconnect(_) => Route::Disconnect,
        }
    }
}

/// The action a message names, read once from its body where the socket has it, as API
/// Gateway's route selection reads `$request.body.action`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageAction {
    /// The `action` as the caller wrote it, when the body is a JSON object with a string there.
    pub name: Option<String>,
    /// A `join` or `leave` the domain reads as such: the connection's rooms may have changed.
    pub changes_rooms: bool,
    /// The room a `publish` the domain reads as such goes to: its stream moves on.
    pub publishes_to: Option<String>,
}

impl MessageAction {
    pub fn read(body: &str, max_message_bytes: usize) -> Self {
        match parse_request(body.as_bytes(), max_message_bytes) {
            Ok(request) => {
                let action = request.action.as_any();
                Self {
                    name: Some(request.name().to_owned()),
                    changes_rooms: action.is::<Join>() || action.is::<Leave>(),
                    publishes_to: action
                        .downcast_ref::<Publish>()
                        .map(|publish| publish.room.as_str().to_owned()),
                }
            }
            // Refused by the handler: still shown under the action it names, if any.
            Err(_) => Self {
                name: action_named_in(body),
                changes_rooms: false,
                publishes_to: None,
            },
        }
    }
}

/// `body.action`, when the body is a JSON object whose `action` is a string.
fn action_named_in(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Selection {
        action: Option<Value>,
    }
    let selection: Selection = serde_json::from_str(body).ok()?;
    match selection.action? {
        Value::String(name) => Some(name),
        _ => None,
    }
}

pub(crate) struct Invoker {
    handler: Arc<dyn EventHandler>,
    connect: Semaphore,
    default: Semaphore,
    disconnect: Semaphore,
    inspector: Arc<Inspector>,
}

impl Invoker {
    /// `handler` behind three pools of `max_concurrent` invocations each; every invocation is
    /// recorded in `inspector`.
    pub fn new(
        handler: Arc<dyn EventHandler>,
        max_concurrent: usize,
        inspector: Arc<Inspector>,
    ) -> Self {
        let pool = || Semaphore::new(max_concurrent.max(1));
        Self {
            handler,
            connect: pool(),
            default: pool(),
            disconnect: pool(),
            inspector,
        }
    }

    /// Runs the handler as API Gateway invokes a Lambda: at most `max_concurrent` of one route
    /// at once, the rest waiting their turn. The event is built only once the invocation may
    /// start: a burst of 10 000 messages waiting for their turn then holds 10 000 message
    /// bodies, not 10 000 events of a few KiB each, whose memory the allocator kept after the
    /// burst (`bench gateway-load`: BENCHMARKS.md, "The local gateway").
    pub async fn invoke(
        &self,
        conn: &ConnectionContext,
        invocation: Invocation,
        event: impl FnOnce() -> Value,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        let route = invocation.route();
        let pool = match route {
            Route::Connect => &self.connect,
            Route::Default => &self.default,
            Route::Disconnect => &self.disconnect,
        };
        let permit = pool.acquire().await;
        let event = event();
        let shown = shown_event(&event);
        let started = Instant::now();
        // API Gateway waits this long for an integration, whatever the function's own timeout.
        let deadline = crate::clock::now().saturating_add(API_GATEWAY_INTEGRATION_TIMEOUT);
        let outcome = self.handler.handle_json(event, deadline).await;
        let duration = started.elapsed();
        let (action, changes_rooms, publishes_to, closed) = match invocation {
            Invocation::Message(action) => {
                (action.name, action.changes_rooms, action.publishes_to, None)
            }
            Invocation::Connect => (None, false, None, None),
            Invocation::Disconnect(close) => (None, false, None, Some(close)),
        };
        let refresh = changes_rooms && outcome.is_ok();
        self.inspector.invocation(InvocationRecord {
            at: crate::clock::now_millis(),
            route,
            connection_id: &conn.connection_id,
            principal: conn.principal.as_deref(),
            connected_at: conn.connected_at,
            source_ip: &conn.source_ip,
            action: action.as_deref(),
            closed,
            duration,
            outcome: outcome.as_ref().map_err(ToString::to_string),
            event: shown,
        });
        drop(permit);
        if refresh {
            self.inspector.refresh_rooms(&conn.connection_id).await;
        }
        if let Some(room) = publishes_to.filter(|_| outcome.is_ok()) {
            self.inspector.refresh_stream(&room).await;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::FutureExt;
    use tokio::sync::Notify;

    use super::*;

    /// Answers every event once released, so an invocation can be held in its slot.
    #[derive(Default)]
    struct HeldHandler {
        release: Notify,
    }

    #[async_trait]
    impl EventHandler for HeldHandler {
        async fn handle_json(
            &self,
            _: Value,
            _: Timestamp,
        ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
            self.release.notified().await;
            Ok(ApiGatewayProxyResponse::default())
        }
    }

    fn conn() -> ConnectionContext {
        ConnectionContext {
            connection_id: "abc=".into(),
            connected_at: 0,
            source_ip: "127.0.0.1".into(),
            user_agent: String::new(),
            principal: None,
            authorizer: None,
        }
    }

    fn message() -> Invocation {
        Invocation::Message(MessageAction::default())
    }

    #[tokio::test]
    async fn a_message_waiting_for_an_invocation_slot_has_no_event_built_yet() {
        let handler = Arc::new(HeldHandler::default());
        let invoker = Invoker::new(handler.clone(), 1, Arc::new(Inspector::new(None)));
        let built = AtomicBool::new(false);
        let conn = conn();

        let mut first = Box::pin(invoker.invoke(&conn, message(), || Value::Null));
        assert!((&mut first).now_or_never().is_none(), "holds the only slot");
        let mut waiting = Box::pin(invoker.invoke(&conn, message(), || {
            built.store(true, Ordering::SeqCst);
            Value::Null
        }));
        assert!((&mut waiting).now_or_never().is_none());
        assert!(!built.load(Ordering::SeqCst));

        handler.release.notify_one();
        assert!(first.await.is_ok());
        handler.release.notify_one();
        assert!(waiting.await.is_ok());
        assert!(built.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn connect_and_disconnect_do_not_wait_behind_a_message_holding_the_default_pool() {
        let handler = Arc::new(HeldHandler::default());
        let invoker = Invoker::new(handler.clone(), 1, Arc::new(Inspector::new(None)));
        let conn = conn();
        let (connect_built, disconnect_built) = (AtomicBool::new(false), AtomicBool::new(false));

        let mut held = Box::pin(invoker.invoke(&conn, message(), || Value::Null));
        assert!(
            (&mut held).now_or_never().is_none(),
            "holds the only $default slot"
        );
        let connect = invoker.invoke(&conn, Invocation::Connect, || {
            connect_built.store(true, Ordering::SeqCst);
            Value::Null
        });
        let disconnect = invoker.invoke(&conn, Invocation::Disconnect((1000, "bye")), || {
            disconnect_built.store(true, Ordering::SeqCst);
            Value::Null
        });
        assert!(Box::pin(connect).now_or_never().is_none(), "at the handler");
        assert!(
            Box::pin(disconnect).now_or_never().is_none(),
            "at the handler"
        );

        assert!(connect_built.load(Ordering::SeqCst));
        assert!(disconnect_built.load(Ordering::SeqCst));
    }

    #[test]
    fn a_message_names_its_action_as_the_caller_wrote_it() {
        let read = |body: &str| MessageAction::read(body, 128 * 1024);

        assert_eq!(
            read(r#"{"action":"join","room":"lobby"}"#),
            MessageAction {
                name: Some("join".into()),
                changes_rooms: true,
                publishes_to: None,
            }
        );
        assert!(read(r#"{"action":"leave","room":"lobby"}"#).changes_rooms);
        assert_eq!(read(r#"{"action":"ping"}"#).name.as_deref(), Some("ping"));
        assert!(!read(r#"{"action":"typing","room":"lobby"}"#).changes_rooms);
        assert_eq!(
            read(r#"{"action":"publish","room":"lobby","data":1}"#).publishes_to,
            Some("lobby".into())
        );
        // Refused by the domain, still named.
        assert_eq!(
            read(r#"{"action":"nope"}"#),
            MessageAction {
                name: Some("nope".into()),
                changes_rooms: false,
                publishes_to: None,
            }
        );
        assert!(!read(r#"{"action":"join","room":"a/b"}"#).changes_rooms);
        assert_eq!(read("{oops"), MessageAction::default());
        assert_eq!(read(r#"{"action":1}"#), MessageAction::default());
    }
}
