//! API Gateway: the `@connections` management API (outbound) and the WebSocket event mapping
//! (inbound).

mod endpoint;
pub mod inbound;
mod notifier;

pub use endpoint::{EndpointError, ManagementEndpoint, url_suffix_for};
pub use notifier::{ApiGatewayNotifier, NotifierTimeouts};
