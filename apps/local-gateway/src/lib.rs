//! The local API Gateway: WebSocket side, `@connections` API and a chat page on one port.
//!
//! - [`server`]: the HTTP server, its start and its graceful shutdown.
//! - [`handshake`]: who may open a WebSocket, the authorizer and `$connect`.
//! - [`socket`]: one task per socket: limits, close codes, `$disconnect`.
//! - [`outbox`]: a socket's bounded outbound queue and how it is told to close.
//! - [`registry`]: the open sockets, and the rules for posting to and closing one.
//! - [`bounded_notifier`]: the HTTP notifier's posts to this gateway, a bounded number at once.
//! - [`management`]: `POST|GET|DELETE /{stage}/@connections/{id}` with AWS-style errors.
//! - [`inspector`]: the live inspector page at `/` and its event feed.
//! - [`metrics_page`]: `GET /metrics`, the handlers' metrics in Prometheus text format.
//! - [`browser_safety`]: keeping other web pages away from a gateway on the developer's laptop.
//! - [`events`]: the API Gateway events built for each upgrade, message and close.
//! - [`invoker`]: the three routes' integrations, each with its own concurrency, and the
//!   typed record of each invocation the inspector gets.
//! - [`clock`]: the wall clock the events and the domain read.
//! - [`delivery`]: `--workers` running the delivery worker over the in-memory queue.
//! - [`publish_route`]: `POST /{stage}/@publish`, a backend's publish without a WebSocket.
//! - [`limits`], [`flags`], [`wiring`], [`tokens`]: configuration.

mod bounded_notifier;
mod browser_safety;
mod chat_page;
mod clock;
mod close_codes;
mod delivery;
mod events;
mod flags;
mod gateway;
mod handshake;
mod inspector;
mod invoker;
mod limits;
mod management;
mod metrics_page;
mod outbox;
mod publish_route;
mod registry;
mod server;
mod socket;
mod tokens;
mod wiring;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use domain::{ConnectionRepository, TokenVerifier};
use tokio::net::TcpListener;

pub use browser_safety::{BrowserPolicy, exposure_warning};
pub use delivery::LocalDelivery;
pub use flags::{NotifierKind, Options};
pub use invoker::EventHandler;
pub use limits::{
    API_GATEWAY_IDLE_TIMEOUT, API_GATEWAY_MAX_FRAME_BYTES, CLOSE_HANDSHAKE_TIMEOUT, Limits,
};
pub use registry::{InProcessNotifier, PostError, Sockets};
pub use server::{RunningGateway, start};

pub struct GatewayConfig {
    pub listener: TcpListener,
    pub stage: String,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    /// Runs the project's REQUEST authorizer on every upgrade when set, as API Gateway does.
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    /// The open sockets; shared with an `InProcessNotifier` when the handler uses one.
    pub sockets: Arc<Sockets>,
    /// Which other web pages may open a WebSocket.
    pub browser: BrowserPolicy,
    /// The in-memory delivery queue and its workers (`--workers`); `None`: everything inline,
    /// and `@publish` answers 503.
    pub delivery: Option<LocalDelivery>,
    /// The handler's store, asked by the inspector which rooms a connection is in; without it
    /// the inspector shows no rooms.
    pub rooms: Option<Arc<dyn ConnectionRepository>>,
}

fn routes(gateway: Arc<gateway::Gateway>) -> Router {
    metrics_page::install();
    Router::new()
        .route("/", get(handshake::root))
        // Before `/{stage}`: a static path wins, so a stage cannot be named `metrics`.
        .route("/metrics", get(metrics_page::render))
        // Under one prefix, so only the stage `inspector` is taken.
        .route("/inspector", get(inspector::page))
        .route("/inspector/events", get(inspector::stream::events))
        .route("/inspector/console", get(inspector::console))
        .route("/inspector/style.css", get(inspector::style))
        .route("/inspector/app.js", get(inspector::app))
        .route("/inspector/chat.js", get(inspector::chat))
        .route("/inspector/metrics.js", get(inspector::metrics))
        .route("/inspector/dom.js", get(inspector::dom))
        .route("/inspector/ws-client.js", get(inspector::ws_client))
        .route("/{stage}", get(handshake::upgrade))
        .route("/{stage}/@connections/{id}", any(management::connection))
        .route("/{stage}/@publish", post(publish_route::publish))
        .route(
            "/@connections/{id}",
            any(management::connection_without_stage),
        )
        .layer(axum::middleware::from_fn_with_state(
            gateway.clone(),
            browser_safety::require_loopback_host,
        ))
        .with_state(gateway)
}
