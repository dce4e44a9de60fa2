//! What every request handler of the gateway shares: configuration, the open sockets, and the
//! handler with its concurrency limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use adapters::apigateway::inbound::InboundError;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use domain::{ConnectionId, TokenVerifier};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use crate::browser_safety::BrowserPolicy;
use crate::registry::OpenSocket;
use crate::{EventHandler, Limits, Sockets};

/// The integration a route invokes. In AWS each is its own Lambda function with its own
/// concurrency, so `$connect` and `$disconnect` never wait behind a flood of messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route {
    Connect,
    Default,
    Disconnect,
}

pub(crate) struct Gateway {
    pub stage: String,
    pub api_id: String,
    pub addr: SocketAddr,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    pub sockets: Arc<Sockets>,
    pub browser: BrowserPolicy,
    /// The chat page, with this gateway's stage in it.
    pub chat_page_html: String,
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
    pub shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(parts: GatewayParts) -> Self {
        let pool = || Semaphore::new(parts.limits.max_concurrent_invocations.max(1));
        Self {
            chat_page_html: crate::chat_page::render(&parts.stage),
            connection_slots: Arc::new(Semaphore::new(connection_permits(&parts.limits))),
            connect_pool: pool(),
            default_pool: pool(),
            disconnect_pool: pool(),
            stage: parts.stage,
            api_id: "local".into(),
            addr: parts.addr,
            limits: parts.limits,
            handler: parts.handler,
            authorizer: parts.authorizer,
            sockets: parts.sockets,
            browser: parts.browser,
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
        let _permit = pool.acquire().await;
        self.handler.handle_json(event()).await
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
