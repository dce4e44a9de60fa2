//! Support for the end-to-end tests: reaching the servers they need, with clear failures when a
//! server is missing (never a silent skip).

pub mod browser;
pub mod cdp;
pub mod client;
pub mod deployed;
pub mod gateway_probes;
pub mod publish;
pub mod rooms;
pub mod sqs;
pub mod ws;

use aws_sdk_dynamodb::Client;
use std::sync::atomic::{AtomicU32, Ordering};

/// The DynamoDB-compatible server `./scripts/test` starts (moto). A test that needs it fails with
/// this message rather than passing without it.
pub fn dynamodb_endpoint() -> String {
    std::env::var("TEST_DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TEST_DYNAMODB_ENDPOINT is not set. Run ./scripts/test, which installs and starts the moto \
             DynamoDB server, or start one yourself (moto_server -H 127.0.0.1 -p 5005) and export \
             TEST_DYNAMODB_ENDPOINT=http://127.0.0.1:5005"
        )
    })
}

/// An SDK config that can only reach loopback: dummy credentials, fixed region, no metadata probe.
pub async fn local_sdk_config() -> aws_config::SdkConfig {
    // SAFETY of intent: tests set process-wide variables once, before any client is built.
    unsafe { std::env::set_var("AWS_EC2_METADATA_DISABLED", "true") };
    adapters::wiring::offline_sdk_config().await
}

/// The Rust SDK's `@connections` client for a management endpoint (`http://host:port/stage`).
pub async fn management_client(endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&local_sdk_config().await)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(config)
}

pub async fn dynamodb_client() -> Client {
    let config = local_sdk_config().await;
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&config)
        .endpoint_url(dynamodb_endpoint())
        .build();
    Client::from_conf(dynamo)
}

/// A table name no other test uses, so tests run in parallel on one server.
pub fn unique_table(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}
