//! The SDK clients' HTTP client: one for every client, its connector built at the first request,
//! and, in the Lambdas, its root certificates read on a thread of their own during init.
//!
//! The SDK's default HTTPS client builds a connector, and so reads and parses the system's root
//! certificates, when each SDK client is built (`validate_base_client_config`, on purpose: the
//! first request should not pay), and `aws_config`'s credential chain builds an STS client up
//! front, so it happened before the first event in every process, on the path to it: about a
//! third of the `default` function's start-up CPU when that was measured. Each SDK client also
//! got a default client of its own, and parsed the roots into a trust store of its own.
//!
//! - `sdk_loader` gives every client one shared copy of the SDK's own default client, wrapped in
//!   `ConnectorOnFirstRequest`: building a client builds no connector. Everything else is the SDK's
//!   client: its TLS settings, proxy settings, pool, timeouts, and the classification of
//!   connection errors the retry strategy relies on. The connector serves http and https alike,
//!   so the first SDK request of any scheme reads the roots; a process that makes none (the
//!   local gateway in memory) never does.
//! - `read_sdk_roots_in_background` (the Lambdas, `wiring::aws_handler`) decodes them on a second
//!   thread during init, off the path to the first event: a `ping` never waits for them, and a
//!   first event that calls DynamoDB finds them decoded (its connector still parses them into a
//!   trust store), or waits for that thread rather than decoding them again. Not left to the first
//!   request: nearly every first event calls DynamoDB, and Lambda's init has been measured by
//!   users (AWS does not document it) to run with more CPU than the invocations of a small
//!   function (128 MB buys 1/14 of a vCPU, BENCHMARKS.md, "Cold start"), so work moved into the
//!   first invocation could take many times as long there. (Were init throttled as well, a read at
//!   the first request would be the better choice: BENCHMARKS.md, "Cold start", measures both.)

use aws_smithy_runtime::client::defaults::default_http_client_plugin_v2;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;

/// Wraps an SDK HTTP client so that building an SDK client on it builds no connector.
#[derive(Debug, Clone)]
pub struct ConnectorOnFirstRequest(SharedHttpClient);

impl ConnectorOnFirstRequest {
    pub fn new(inner: SharedHttpClient) -> Self {
        Self(inner)
    }
}

impl HttpClient for ConnectorOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    /// The one change. In aws-smithy-http-client 1.1, the inner client's check only builds a
    /// connector, to load the roots early, and returns `Ok` whatever happens: skipping it loses
    /// no validation. (The final-config check stays the trait's default `Ok`, as the SDK's client
    /// leaves it: `SharedHttpClient` does not expose the inner client's checks to forward them.)
    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The behaviour version of the default client and of the loader: one choice for both.
fn behavior() -> BehaviorVersion {
    BehaviorVersion::latest()
}

/// The SDK's default HTTPS client (the one every client would otherwise build for itself),
/// building its connector on first use. Give it to the configuration loader, so the credential
/// providers' own clients (the chain builds an STS client up front) use it too.
pub fn default_client_on_first_request() -> Option<SharedHttpClient> {
    let plugin = default_http_client_plugin_v2(behavior())?;
    let components = plugin.runtime_components(&RuntimeComponentsBuilder::new("default client"));
    let inner = components.http_client()?;
    Some(ConnectorOnFirstRequest::new(inner).into_shared())
}

/// Starts building, and dropping, a connector with the SDK's default TLS settings on a thread of
/// its own. The certificates it decodes stay in the process (the SDK keeps them in a `LazyLock`)
/// for the connector the first request builds, which waits for this thread if it has not ended.
pub fn read_sdk_roots_in_background() -> Option<std::thread::JoinHandle<bool>> {
    std::thread::Builder::new()
        .name("sdk-roots".into())
        .spawn(|| {
            let built = build_default_connector();
            if !built {
                tracing::warn!(
                    "no default TLS connector to build: the roots are read at the first request"
                );
            }
            built
        })
        .ok()
}

/// Whether there is a default connector (the SDK's `rustls-aws-lc` feature) to build.
fn build_default_connector() -> bool {
    aws_smithy_http_client::default_connector(&HttpConnectorSettings::default(), None).is_some()
}

/// The SDK's configuration loader, its HTTP client building its connector on first use.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(behavior());
    match default_client_on_first_request() {
        Some(client) => loader.http_client(client),
        None => loader,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture};
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// Counts what the SDK asks of its HTTP client: base-config checks (where the default client
    /// builds its connector and loads its roots) and connectors handed out.
    #[derive(Debug, Default)]
    struct Counts {
        eager_builds: AtomicUsize,
        connectors: AtomicUsize,
    }

    #[derive(Debug, Clone, Default)]
    struct CountingClient(Arc<Counts>);

    impl CountingClient {
        fn eager_builds(&self) -> usize {
            self.0.eager_builds.load(Ordering::SeqCst)
        }

        fn connectors(&self) -> usize {
            self.0.connectors.load(Ordering::SeqCst)
        }
    }

    #[derive(Debug)]
    struct EmptyTable;

    impl HttpConnector for EmptyTable {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            let mut response = Response::new(
                StatusCode::try_from(200).expect("200 is a status"),
                SdkBody::from(r#"{"TableNames":[]}"#),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl HttpClient for CountingClient {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.0.connectors.fetch_add(1, Ordering::SeqCst);
            SharedHttpConnector::new(EmptyTable)
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.eager_builds.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    async fn sdk_on(client: impl HttpClient + 'static) -> aws_config::SdkConfig {
        crate::wiring::offline_sdk_config()
            .await
            .into_builder()
            .http_client(client)
            .build()
    }

    fn dynamodb(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        crate::wiring::dynamodb_client(sdk, Some("http://127.0.0.1:9"))
    }

    #[tokio::test]
    async fn the_sdk_on_its_own_asks_for_an_early_connector_for_each_client_it_builds() {
        let counting = CountingClient::default();
        let sdk = sdk_on(counting.clone()).await;

        dynamodb(&sdk);
        dynamodb(&sdk);

        assert_eq!(counting.eager_builds(), 2);
    }

    #[tokio::test]
    async fn wrapped_it_builds_none_until_the_first_request_and_then_serves_it() {
        let counting = CountingClient::default();
        let sdk = sdk_on(ConnectorOnFirstRequest::new(counting.clone().into_shared())).await;

        let client = dynamodb(&sdk);
        dynamodb(&sdk);
        assert_eq!(counting.eager_builds(), 0);
        assert_eq!(counting.connectors(), 0);

        let tables = client
            .list_tables()
            .send()
            .await
            .expect("the canned answer");
        assert_eq!(tables.table_names(), &[] as &[String]);
        assert_eq!(counting.eager_builds(), 0);
        assert!(counting.connectors() >= 1);
    }

    #[test]
    fn the_background_read_has_a_default_connector_to_build() {
        let reading = read_sdk_roots_in_background().expect("a thread");
        assert!(reading.join().expect("the thread ends"));
    }

    #[tokio::test]
    async fn the_default_client_and_the_offline_configuration_are_the_sdks_client_wrapped() {
        let offline = crate::wiring::offline_sdk_config().await;
        for client in [
            default_client_on_first_request().expect("the SDK's default client"),
            offline.http_client().expect("the configuration's client"),
        ] {
            assert!(format!("{client:?}").contains("ConnectorOnFirstRequest"));
            let metadata = client.connector_metadata().expect("the SDK's metadata");
            assert_eq!(metadata.name(), "hyper");
        }
    }
}
