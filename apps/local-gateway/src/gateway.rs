//! What every request handler of the gateway shares: configuration, the open sockets, and the
//! invoker of the routes' integrations. Leaf modules never see it: their handlers take the part
//! they need as a substate (`State<Arc<Inspector>>`, `State<Arc<Pages>>`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRef;
use domain::ConnectionId;
use domain::delivery::DeliveryQueue;

use crate::authorizer::Authorizer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::browser_safety::BrowserPolicy;
use crate::config::GatewayConfig;
use crate::delivery::LocalDelivery;
use crate::deployment::Deployed;
use crate::events::Api;
use crate::inspector::{Inspector, Pages};
use crate::invoker::Invoker;
use crate::limits::Limits;
use crate::registry::{OpenSocket, Sockets};

pub(crate) struct Gateway {
    /// The stage, the API id and the address, as the events carry them.
    pub api: Api,
    pub limits: Limits,
    /// Runs `$connect`, `$default` and `$disconnect`, as three Lambda functions would.
    pub invoker: Invoker,
    /// What the inspector page shows: every invocation and `@connections` call is recorded.
    pub inspector: Arc<Inspector>,
    /// The inspector page and its console, with this gateway's stage in them.
    pub pages: Arc<Pages>,
    pub authorizer: Option<Arc<dyn Authorizer>>,
    pub sockets: Arc<Sockets>,
    pub browser: BrowserPolicy,
    /// Where `POST /{stage}/@publish` puts a job; `None` without workers.
    pub publish_queue: Option<Arc<dyn DeliveryQueue>>,
    /// Where `POST /{stage}/@publish` puts a backend's control message; `None` without workers.
    pub control_queue: Option<crate::delivery::ControlSender>,
    /// True once shutdown has begun: no new WebSocket, every open one closes with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// One permit per WebSocket open or in its handshake, held until its `$disconnect` is done:
    /// the connection cap, and what shutdown waits for.
    pub connection_slots: Arc<Semaphore>,
    /// The lifecycle events the handler published (`GET /inspector/lifecycle`).
    pub lifecycle: Option<Arc<crate::lifecycle::LocalLifecycleEvents>>,
}

impl Gateway {
    /// The gateway `config` describes, and what the server runs beside it: the listeners and
    /// the delivery workers.
    pub fn new(
        config: GatewayConfig,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<(Self, Listeners, Background)> {
        let GatewayConfig {
            listener,
            notifier_listener,
            stage,
            api,
            limits,
            handler,
            authorizer,
            sockets,
            browser,
            chat_view,
            delivery,
            rooms,
            log,
            deployed,
            lifecycle,
        } = config;
        let addr = listener.local_addr()?;
        let inspector = Arc::new(Inspector::new(rooms).with_log(log));
        let gateway = Self {
            pages: Arc::new(Pages::new(&stage, limits.idle_timeout, chat_view)),
            api: Api {
                stage,
                name: api,
                addr,
            },
            invoker: Invoker::new(
                handler,
                limits.max_concurrent_invocations,
                inspector.clone(),
            ),
            inspector,
            connection_slots: Arc::new(Semaphore::new(connection_permits(&limits))),
            limits,
            authorizer,
            sockets,
            browser,
            publish_queue: delivery.as_ref().map(|d| d.transport.publisher()),
            control_queue: delivery.as_ref().map(|d| d.transport.control_sender()),
            shutdown,
            lifecycle,
        };
        let listeners = Listeners {
            public: listener,
            notifier: notifier_listener,
        };
        Ok((gateway, listeners, Background { delivery, deployed }))
    }

    pub fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, OpenSocket>> {
        self.sockets.lock()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// What runs beside the request handlers and stops after them.
pub(crate) struct Background {
    pub delivery: Option<LocalDelivery>,
    pub deployed: Option<Deployed>,
}

/// The gateway's listeners (see [`GatewayConfig`]).
pub(crate) struct Listeners {
    pub public: TcpListener,
    pub notifier: Option<TcpListener>,
}

/// The router's state: the gateway for the request handlers, and through `FromRef` the part
/// each leaf handler takes.
#[derive(Clone)]
pub(crate) struct RouterState(pub Arc<Gateway>);

impl FromRef<RouterState> for Arc<Gateway> {
    fn from_ref(state: &RouterState) -> Self {
        state.0.clone()
    }
}

impl FromRef<RouterState> for Arc<Inspector> {
    fn from_ref(state: &RouterState) -> Self {
        state.0.inspector.clone()
    }
}

impl FromRef<RouterState> for crate::lifecycle::Recent {
    fn from_ref(state: &RouterState) -> Self {
        crate::lifecycle::Recent(state.0.lifecycle.clone())
    }
}

impl FromRef<RouterState> for Arc<Pages> {
    fn from_ref(state: &RouterState) -> Self {
        state.0.pages.clone()
    }
}

/// The connection cap as semaphore permits (a semaphore holds at most `u32::MAX` at once).
pub(crate) fn connection_permits(limits: &Limits) -> usize {
    limits.max_connections.clamp(1, u32::MAX as usize)
}
