//! Adapters: the only crate that knows DynamoDB item shapes, SDK errors and API Gateway event JSON.

pub mod apigateway;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dynamodb;
pub mod eventbridge;
pub mod hooks;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "lambda")]
mod lambda_fanout;
#[cfg(feature = "lambda")]
mod lambda_metrics;
pub mod memory;
pub mod metrics;
pub mod room_policy;
pub mod sdk_http;
pub mod settings;
pub mod sqs;
pub mod telemetry;
pub mod wiring;
