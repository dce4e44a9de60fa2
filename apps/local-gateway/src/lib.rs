//! The local API Gateway: WebSocket side, `@connections` API and a chat page on one port.
//!
//! - [`server`]: the HTTP server and its routes, its start and its graceful shutdown.
//! - [`config`]: what a gateway starts from; [`gateway`]: what its request handlers share.
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
//! - [`request_body`]: a request's body, read up to a limit and within a deadline.
//! - [`authorizer`]: the `$connect` authorizer, in process or a function, read as API Gateway
//!   reads its policy.
//! - [`deployment`]: `--deployment FILE`, the packaged stack's functions behind the routes, run
//!   under the Lambda emulator in [`lambda`], and its event source mappings.
//! - [`limits`], [`flags`], [`wiring`], [`tokens`]: configuration.
//!
//! Only the modules that handle requests (`server`, `handshake`, `socket`, `management`,
//! `publish_route`) import [`gateway`]; every other module is a leaf they are built from, and the
//! imports form no cycle (`tests/tidy_modules.rs`).

mod authorizer;
mod bounded_notifier;
mod browser_safety;
mod chat_page;
mod clock;
mod close_codes;
mod config;
mod delivery;
pub mod deployment;
mod events;
mod flags;
mod gateway;
mod handshake;
mod inspector;
mod invoker;
pub mod lambda;
pub mod lifecycle;
mod limits;
mod management;
mod metrics_page;
mod outbox;
mod publish_route;
mod registry;
mod request_body;
mod server;
mod socket;
mod tokens;
mod wiring;

pub use browser_safety::{BrowserPolicy, exposure_warning};
pub use config::GatewayConfig;
pub use delivery::LocalDelivery;
pub use events::ApiName;
pub use flags::{NotifierKind, Options};
pub use inspector::bus::{
    HISTORY_BYTES as INSPECTOR_HISTORY_BYTES, MAX_SUBSCRIBERS as INSPECTOR_MAX_SUBSCRIBERS,
};
pub use invoker::{EventHandler, IntegrationError};
pub use limits::{
    API_GATEWAY_IDLE_TIMEOUT, API_GATEWAY_MAX_FRAME_BYTES, CLOSE_HANDSHAKE_TIMEOUT, Limits,
};
pub use registry::{InProcessNotifier, PostError, Sockets};
pub use server::{RunningGateway, start};
