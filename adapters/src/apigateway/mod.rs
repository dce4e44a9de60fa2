//! API Gateway: the `@connections` management API (outbound) and the WebSocket event mapping
//! (inbound).

mod ahead;
pub(crate) mod credentials_cache;
mod endpoint;
pub mod inbound;
pub(crate) mod lazy_tls;
mod notifier;
mod notifier_client;
mod signed_notifier;
pub mod sigv4;
mod status;

pub use endpoint::{EndpointError, ManagementEndpoint, url_suffix_for};
pub use notifier::{ApiGatewayNotifier, NotifierTimeouts};
pub use notifier_client::{NotifierClient, RootsRead, UnknownNotifierClient};
pub use signed_notifier::{SignedNotifier, SignedNotifierError};
