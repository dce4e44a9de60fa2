//! What the gateway refuses, and when. API Gateway's own limits default to AWS's values; the
//! others protect the developer's laptop and have no AWS counterpart.

use std::time::Duration;

pub use domain::connection::{API_GATEWAY_IDLE_TIMEOUT, API_GATEWAY_MAX_CONNECTION_DURATION};
pub use domain::protocol::API_GATEWAY_MAX_MESSAGE_BYTES;

/// API Gateway refuses a single WebSocket frame above 32 KB (close 1009), even when the message
/// it belongs to is within the 128 KB message limit.
pub const API_GATEWAY_MAX_FRAME_BYTES: usize = 32 * 1024;

/// Once a close frame is on its way, how long the client has to answer it before the TCP
/// connection is dropped: a client that never answers must not hold the socket until the idle
/// timeout.
pub const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest single frame; a larger one closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest message (all its frames together); a larger one closes the socket with 1009.
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    /// How long a socket may live, whatever the client does.
    pub max_connection_duration: Duration,
    /// `$default` invocations running at once, like a Lambda function's concurrency limit: a
    /// burst of messages queues instead of opening a loopback connection per reply. `$connect`
    /// and `$disconnect` are other functions with pools of the same size, so they never wait
    /// behind messages.
    pub max_concurrent_invocations: usize,
    /// Messages of one socket handed to the handler and not yet answered; at the cap the gateway
    /// stops reading that socket, so a flooding client is slowed by TCP, not buffered in memory.
    pub max_in_flight_per_connection: usize,
    /// Bytes posted to one socket and not yet written to it. A post that would exceed it gets
    /// 410 and the socket is closed with 1008: its client has stopped reading.
    pub max_outbound_queue_bytes: usize,
    /// Time a client has to send a complete HTTP request head (the WebSocket handshake
    /// included), and then the body the gateway reads (`@connections`, `@publish`); a slower
    /// one is disconnected, or answered 408.
    pub handshake_timeout: Duration,
    /// WebSockets open or in their handshake; one more gets 429.
    pub max_connections: usize,
    /// Plain HTTP connections open at once (a WebSocket counts until it is upgraded, then no
    /// more); one more is refused at once.
    pub max_http_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: API_GATEWAY_MAX_FRAME_BYTES,
            max_message_bytes: API_GATEWAY_MAX_MESSAGE_BYTES,
            idle_timeout: API_GATEWAY_IDLE_TIMEOUT,
            max_connection_duration: API_GATEWAY_MAX_CONNECTION_DURATION,
            max_concurrent_invocations: 256,
            max_in_flight_per_connection: 16,
            max_outbound_queue_bytes: 4 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_http_connections: 256,
        }
    }
}
