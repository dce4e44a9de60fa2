//! What every request handler of the gateway shares: configuration, the open sockets, and the
//! invoker of the routes' integrations.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use domain::{ConnectionId, ConnectionRepository, TokenVerifier};
use tokio::sync::{Semaphore, watch};

use crate::browser_safety::BrowserPolicy;
use crate::events::Api;
use crate::inspector::Inspector;
use crate::invoker::Invoker;
use crate::registry::OpenSocket;
use crate::{EventHandler, Limits, Sockets};

pub(crate) struct Gateway {
    /// The stage, the API id and the address, as the events carry them.
    pub api: Api,
    pub limits: Limits,
    /// Runs `$connect`, `$default` and `$disconnect`, as three Lambda functions would.
    pub invoker: Invoker,
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
        let inspector = Arc::new(Inspector::new(parts.rooms));
        Self {
            chat_page_html: crate::chat_page::render(&parts.stage),
            inspector_html: crate::inspector::render(
                &parts.stage,
                parts.limits.idle_timeout.as_secs(),
            ),
            invoker: Invoker::new(
                parts.handler,
                parts.limits.max_concurrent_invocations,
                inspector.clone(),
            ),
            inspector,
            connection_slots: Arc::new(Semaphore::new(connection_permits(&parts.limits))),
            api: Api {
                stage: parts.stage,
                id: "local".into(),
                addr: parts.addr,
            },
            limits: parts.limits,
            authorizer: parts.authorizer,
            sockets: parts.sockets,
            browser: parts.browser,
            publish_queue: parts.publish_queue,
            shutdown: parts.shutdown,
        }
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
