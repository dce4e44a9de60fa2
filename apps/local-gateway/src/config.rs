//! What a gateway starts from: [`Options::gateway_config`](crate::Options::gateway_config) builds
//! it from the flags, a test builds it by hand, and [`start`](crate::start) consumes it.

use std::sync::Arc;

use domain::ConnectionRepository;
use domain::stream::RoomLog;
use tokio::net::TcpListener;

use crate::authorizer::Authorizer;
use crate::browser_safety::BrowserPolicy;
use crate::delivery::LocalDelivery;
use crate::deployment::Deployed;
use crate::events::ApiName;
use crate::invoker::EventHandler;
use crate::lifecycle::LocalLifecycleEvents;
use crate::limits::Limits;
use crate::registry::Sockets;

pub struct GatewayConfig {
    /// Where clients, SDKs and browsers reach the gateway.
    pub listener: TcpListener,
    /// A loopback listener for the gateway's own HTTP notifier, serving the same routes: the
    /// replies the handler posts to `@connections` then never wait for a place under
    /// `--max-http-connections` behind other clients. `None` with the in-process notifier.
    pub notifier_listener: Option<TcpListener>,
    pub stage: String,
    /// The API's id, region and account, as events and ARNs name them.
    pub api: ApiName,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    /// Runs the project's REQUEST authorizer on every upgrade when set, as API Gateway does.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// The open sockets; shared with an `InProcessNotifier` when the handler uses one.
    pub sockets: Arc<Sockets>,
    /// Which other web pages may open a WebSocket.
    pub browser: BrowserPolicy,
    /// Whether the inspector shows its chat view (a fork that is no chat turns it off).
    pub chat_view: bool,
    /// The in-memory delivery queue and its workers (`--workers`); `None`: everything inline,
    /// and `@publish` answers 503.
    pub delivery: Option<LocalDelivery>,
    /// The handler's store, asked by the inspector which rooms a connection is in; without it
    /// the inspector shows no rooms.
    pub rooms: Option<Arc<dyn ConnectionRepository>>,
    /// The rooms' streams, asked by the inspector for each room's latest `seq`.
    pub log: Option<Arc<dyn RoomLog>>,
    /// Under `--deployment`, its functions and event source mappings, polling beside the gateway.
    pub deployed: Option<Deployed>,
    /// The lifecycle events the handler published, listed by the inspector.
    pub lifecycle: Option<Arc<LocalLifecycleEvents>>,
}
