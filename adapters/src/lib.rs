//! Adapters: the only crate that knows DynamoDB item shapes, SDK errors and API Gateway event JSON.

pub mod apigateway;
pub mod clock;
pub mod dynamodb;
pub mod memory;
