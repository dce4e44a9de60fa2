//! DynamoDB requests a scenario sends, by operation, counted by an SDK interceptor (so SDK retries
//! are counted too).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use adapters::wiring;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// DynamoDB requests sent, by operation.
#[derive(Debug, Default, Clone)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    /// The requests counted since the last `take`, by operation.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", |m| m.name())
            .to_string();
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

/// A client of the DynamoDB-compatible server at `endpoint` whose requests `RequestCounter` counts.
pub async fn counted_client(endpoint: &str) -> (aws_sdk_dynamodb::Client, RequestCounter) {
    let counter = RequestCounter::default();
    let sdk = crate::local_sdk_config().await;
    let plain = wiring::dynamodb_client(&sdk, Some(endpoint));
    let client = aws_sdk_dynamodb::Client::from_conf(
        plain
            .config()
            .to_builder()
            .interceptor(counter.clone())
            .build(),
    );
    (client, counter)
}
