//! What every request handler of the gateway shares: configuration, the open sockets, and the
//! handler with its concurrency limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use adapters::apigateway::inbound::InboundError;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use domain::{ConnectionId, ConnectionRepository, TokenVerifier};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::browser_safety::BrowserPolicy;
use crate::events::{Api, Route};
use crate::inspector::Inspector;
use crate::registry::OpenSocket;
use crate::{EventHandler, Limits, Sockets};

pub(crate) struct Gateway {
    /// The stage, the API id and the address, as the events carry them.
    pub api: Api,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    pub sockets: Arc<Sockets>,
    pub browser: BrowserPolicy,
    /// Where `POST /{stage}/@publish` puts a job; `None` without workers.
    pub publish_queue: Option<Arc<dyn domain::delivery::DeliveryQueue>>,
    /// The chat page, with this gateway's stage in it.
    pub chat_page_html: String,
    /// The inspector page, with this gateway's stage and idle timeout in it.
    pub inspector_html: String,
    /// What the inspector page shows: every invocation and `@connections` call is recorded.
    pub inspector: Arc<Inspector>,
    /// True once shutdown has begun: no new WebSocket, every open one closes with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// One permit per WebSocket open or in its handshake, held until its `$disconnect` is done:
    /// the connection cap, and what shutdown waits for.
    pub connection_slots: Arc<Semaphore>,
    connect_pool: Semaphore,
    default_pool: Semaphore,
    disconnect_pool: Semaphore,
}

pub(crate) struct GatewayParts {
    pub stage: String,
    pub addr: SocketAddr,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    pub sockets: Arc<Sockets>,
    pub browser: BrowserPolicy,
    pub publish_queue: Option<Arc<dyn domain::delivery::DeliveryQueue>>,
    pub shutdown: watch::Receiver<bool>,
    pub rooms: Option<Arc<dyn ConnectionRepository>>,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Self {
        let pool = || Semaphore::new(parts.limits.max_concurrent_invocations.max(1));
        Self {
            chat_page_html: crate::chat_page::render(&parts.stage),
            inspector_html: crate::inspector::render(
                &parts.stage,
                parts.limits.idle_timeout.as_secs(),
            ),
            inspector: Arc::new(Inspector::new(parts.rooms)),
            connection_slots: Arc::new(Semaphore::new(connection_permits(&parts.limits))),
            connect_pool: pool(),
            default_pool: pool(),
            disconnect_pool: pool(),
            api: Api {
                stage: parts.stage,
                id: "local".into(),
                addr: parts.addr,
            },
            limits: parts.limits,
            handler: parts.handler,
            authorizer: parts.authorizer,
            sockets: parts.sockets,
            browser: parts.browser,
            publish_queue: parts.publish_queue,
            shutdown: parts.shutdown,
        }
    }

    /// Runs the handler as API Gateway invokes a Lambda: at most `max_concurrent_invocations` of
    /// one route at once, the rest waiting their turn.
    pub async fn invoke(
        &self,
        route: Route,
        event: Value,
    ) -> Result<ApiGatewayProxyResponse, InboundError> {
        self.invoke_when_admitted(route, || event).await
    }

    /// As `invoke`, building the event only once the invocation may start: a burst of 10 000
    /// messages waiting for their turn then holds 10 000 message bodies, not 10 000 events of a
    /// few KiB each, whose memory the allocator kept after the burst (BENCHMARKS.md, "The local
    /// gateway under load").
    pub async fn invoke_when_admitted(
        &self,
        route: Route,
        event: impl FnOnce() -> Value,
    ) -> Result<ApiGatewayProxyResponse, InboundError> {
        let pool = match route {
            Route::Connect => &self.connect_pool,
            Route::Default => &self.default_pool,
            Route::Disconnect => &self.disconnect_pool,
        };
        let permit = pool.acquire().await;
        let event = event();
        let shown = event.clone();
        let started = Instant::now();
        // API Gateway waits this long for an integration, whatever the function's own timeout.
        let deadline =
            crate::clock::now().saturating_add(domain::connection::API_GATEWAY_INTEGRATION_TIMEOUT);
        let outcome = self.handler.handle_json(event, deadline).await;
        let took = started.elapsed();
        let record = crate::inspector::invocation_record(
            route.key(),
            shown,
            outcome.as_ref().map_err(ToString::to_string),
            took,
        );
        let changes_rooms = matches!(record["action"].as_str(), Some("join" | "leave"));
        let id = record["connectionId"].as_str().map(str::to_owned);
        self.inspector.invocation(record);
        drop(permit);
        if let (true, Some(id)) = (changes_rooms, id) {
            self.inspector.refresh_rooms(&id).await;
        }
        outcome
    }

    pub fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, OpenSocket>> {
        self.sockets.lock()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The connection cap as semaphore permits (a semaphore holds at most `u32::MAX` at once).
pub(crate) fn connection_permits(limits: &Limits) -> usize {
    limits.max_connections.clamp(1, u32::MAX as usize)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
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
            _: domain::Timestamp,
        ) -> Result<ApiGatewayProxyResponse, InboundError> {
            self.release.notified().await;
            Ok(ApiGatewayProxyResponse::default())
        }
    }

    fn gateway_with_one_slot(handler: Arc<HeldHandler>) -> Gateway {
        Gateway::new(GatewayParts {
            stage: "local".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits {
                max_concurrent_invocations: 1,
                ..Limits::default()
            },
            handler,
            authorizer: None,
            sockets: Arc::new(Sockets::default()),
            browser: BrowserPolicy::default(),
            publish_queue: None,
            shutdown: watch::channel(false).1,
            rooms: None,
        })
    }

    #[tokio::test]
    async fn a_message_waiting_for_an_invocation_slot_has_no_event_built_yet() {
        let handler = Arc::new(HeldHandler::default());
        let gateway = gateway_with_one_slot(handler.clone());
        let built = AtomicBool::new(false);

        let mut first = Box::pin(gateway.invoke(Route::Default, Value::Null));
        assert!((&mut first).now_or_never().is_none(), "holds the only slot");
        let mut waiting = Box::pin(gateway.invoke_when_admitted(Route::Default, || {
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
}
