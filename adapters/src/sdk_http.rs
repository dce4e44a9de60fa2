//! The SDK clients' HTTP client: one for every client, its connector built at the first request,
//! and, in the Lambdas, on a thread of its own during init.
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
//! - `lambda_sdk_loader` (the Lambdas, `wiring::sdk_config`) also builds, on a second thread during
//!   init, the connector the SDK would build for the Lambdas' client timeouts (reading and parsing
//!   the roots into a trust store), and hands it to the first request with those timeouts: a
//!   `ping` never waits for it, and a first event that calls DynamoDB finds it built, or waits
//!   for that thread rather than building a second one. Not left to the first request: nearly
//!   every first event calls DynamoDB, and Lambda's init has been measured by users (AWS does not
//!   document it) to run with more CPU than the invocations of a small function (128 MB buys 1/14
//!   of a vCPU, BENCHMARKS.md, "Cold start"), so work moved into the first invocation could take
//!   many times as long there. (Were init throttled as well, a read at the first request would be
//!   the better choice; BENCHMARKS.md, "Cold start", compares the two for the roots alone.)

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
use aws_smithy_types::timeout::TimeoutConfig;

/// Wraps an SDK HTTP client so that building an SDK client on it builds no connector, and, in the
/// Lambdas, so that the first request takes the connector a thread built during init.
#[derive(Debug, Clone)]
pub struct ConnectorOnFirstRequest {
    inner: SharedHttpClient,
    prebuilt: Option<Arc<Prebuilt>>,
}

impl ConnectorOnFirstRequest {
    pub fn new(inner: SharedHttpClient) -> Self {
        Self {
            inner,
            prebuilt: None,
        }
    }

    /// As [`Self::new`], and requests whose connector settings are `settings` (the SDK keys its
    /// connectors by the connect and read timeouts) get the connector `building` returns; the
    /// first such request waits for it. Every other request, and every request if `building`
    /// returns none, gets the inner client's.
    pub fn with_prebuilt(
        inner: SharedHttpClient,
        settings: &HttpConnectorSettings,
        building: JoinHandle<Option<SharedHttpConnector>>,
    ) -> Self {
        Self {
            inner,
            prebuilt: Some(Arc::new(Prebuilt {
                connect_timeout: settings.connect_timeout(),
                read_timeout: settings.read_timeout(),
                state: Mutex::new(PrebuiltState::Building(building)),
            })),
        }
    }
}

/// A connector built on a thread of its own, for the settings it was built with.
#[derive(Debug)]
struct Prebuilt {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    state: Mutex<PrebuiltState>,
}

#[derive(Debug)]
enum PrebuiltState {
    Building(JoinHandle<Option<SharedHttpConnector>>),
    Built(Option<SharedHttpConnector>),
}

impl Prebuilt {
    fn serves(&self, settings: &HttpConnectorSettings) -> bool {
        settings.connect_timeout() == self.connect_timeout
            && settings.read_timeout() == self.read_timeout
    }

    /// The connector, once the thread has ended; `None` if it built none (or panicked).
    fn connector(&self) -> Option<SharedHttpConnector> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let built = match std::mem::replace(&mut *state, PrebuiltState::Built(None)) {
            PrebuiltState::Building(thread) => {
                let built = thread.join().ok().flatten();
                if built.is_none() {
                    tracing::warn!(
                        "no connector was built during init: the first request builds its own"
                    );
                }
                built
            }
            PrebuiltState::Built(connector) => connector,
        };
        *state = PrebuiltState::Built(built.clone());
        built
    }
}

impl HttpClient for ConnectorOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        if let Some(connector) = self
            .prebuilt
            .as_ref()
            .filter(|prebuilt| prebuilt.serves(settings))
            .and_then(|prebuilt| prebuilt.connector())
        {
            return connector;
        }
        self.inner.http_connector(settings, components)
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
        self.inner.connector_metadata()
    }
}

/// The behaviour version of the default client and of the loader: one choice for both.
fn behavior() -> BehaviorVersion {
    BehaviorVersion::latest()
}

/// The SDK's own default HTTPS client, as every SDK client would otherwise build for itself.
fn sdk_default_client() -> Option<SharedHttpClient> {
    let plugin = default_http_client_plugin_v2(behavior())?;
    let components = plugin.runtime_components(&RuntimeComponentsBuilder::new("default client"));
    components.http_client()
}

/// The SDK's default HTTPS client, building its connector on first use. Give it to the
/// configuration loader, so the credential providers' own clients (the chain builds an STS client
/// up front) use it too.
pub fn default_client_on_first_request() -> Option<SharedHttpClient> {
    Some(ConnectorOnFirstRequest::new(sdk_default_client()?).into_shared())
}

/// The SDK's default HTTPS client, its connector for `timeouts` (those of every SDK client the
/// Lambdas build, `wiring::sdk_timeouts`) being built now on a thread of its own.
pub fn default_client_building_connector_now(timeouts: &TimeoutConfig) -> Option<SharedHttpClient> {
    let inner = sdk_default_client()?;
    let settings = connector_settings(timeouts);
    let for_thread = settings.clone();
    let client = match std::thread::Builder::new()
        .name("sdk-connector".into())
        .spawn(move || build_like_the_sdk(&for_thread))
    {
        Ok(building) => ConnectorOnFirstRequest::with_prebuilt(inner, &settings, building),
        Err(_) => ConnectorOnFirstRequest::new(inner),
    };
    Some(client.into_shared())
}

/// The settings the SDK asks its HTTP client for a connector with, for clients with `timeouts`
/// (it keys its connectors by these two).
fn connector_settings(timeouts: &TimeoutConfig) -> HttpConnectorSettings {
    let mut settings = HttpConnectorSettings::builder();
    settings
        .set_connect_timeout(timeouts.connect_timeout())
        .set_read_timeout(timeouts.read_timeout());
    settings.build()
}

/// The connector the SDK's default client builds for `settings` (`aws-smithy-runtime`'s
/// `default_https_client` at our behaviour version: rustls on aws-lc, the SDK's sleep, proxies
/// from the environment from behaviour version 2025-08-07 on), reading and decoding the root
/// certificates on the way. It mirrors aws-smithy-runtime 1.9: check it when the SDK moves
/// (a changed default connector would not be followed here).
fn build_like_the_sdk(settings: &HttpConnectorSettings) -> Option<SharedHttpConnector> {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{ConnectorBuilder, proxy::ProxyConfig};
    let mut builder = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
    builder.set_connector_settings(Some(settings.clone()));
    builder.set_sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep());
    let proxies = if behavior().is_at_least(BehaviorVersion::v2025_08_07()) {
        ProxyConfig::from_env()
    } else {
        ProxyConfig::disabled()
    };
    builder.set_proxy_config(Some(proxies));
    Some(SharedHttpConnector::new(builder.build()))
}

/// The SDK's configuration loader, its HTTP client building its connector on first use.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(behavior());
    match default_client_on_first_request() {
        Some(client) => loader.http_client(client),
        None => loader,
    }
}

/// The Lambdas' loader: its client's connector for `timeouts` is built during init, off the path
/// to the first event, and handed to the first request that needs it.
pub fn lambda_sdk_loader(timeouts: &TimeoutConfig) -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(behavior());
    match default_client_building_connector_now(timeouts) {
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

    /// The canned table, counting the requests it answers.
    #[derive(Debug, Default, Clone)]
    struct PrebuiltTable(Arc<AtomicUsize>);

    impl HttpConnector for PrebuiltTable {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            EmptyTable.call(request)
        }
    }

    fn prebuilt_on(
        inner: &CountingClient,
        timeouts: &TimeoutConfig,
        built: Option<PrebuiltTable>,
    ) -> ConnectorOnFirstRequest {
        let building = std::thread::spawn(move || built.map(SharedHttpConnector::new));
        ConnectorOnFirstRequest::with_prebuilt(
            inner.clone().into_shared(),
            &connector_settings(timeouts),
            building,
        )
    }

    async fn list_tables_twice(client: &aws_sdk_dynamodb::Client) {
        for _ in 0..2 {
            let tables = client
                .list_tables()
                .send()
                .await
                .expect("the canned answer");
            assert_eq!(tables.table_names(), &[] as &[String]);
        }
    }

    #[tokio::test]
    async fn the_lambdas_requests_take_the_connector_built_during_init_and_build_none() {
        let inner = CountingClient::default();
        let table = PrebuiltTable::default();
        let client = prebuilt_on(&inner, &crate::wiring::sdk_timeouts(), Some(table.clone()));
        let sdk = sdk_on(client).await;

        list_tables_twice(&dynamodb(&sdk)).await;

        assert_eq!(table.0.load(Ordering::SeqCst), 2);
        assert_eq!(inner.connectors(), 0);
        assert_eq!(inner.eager_builds(), 0);
    }

    #[tokio::test]
    async fn requests_with_other_timeouts_get_the_inner_clients_connector() {
        let inner = CountingClient::default();
        let table = PrebuiltTable::default();
        let other = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(7))
            .build();
        let sdk = sdk_on(prebuilt_on(&inner, &other, Some(table.clone()))).await;

        list_tables_twice(&dynamodb(&sdk)).await;

        assert_eq!(table.0.load(Ordering::SeqCst), 0);
        assert!(inner.connectors() >= 1);
    }

    #[tokio::test]
    async fn a_thread_that_built_no_connector_leaves_the_inner_client_to_build_one() {
        let inner = CountingClient::default();
        let sdk = sdk_on(prebuilt_on(&inner, &crate::wiring::sdk_timeouts(), None)).await;

        list_tables_twice(&dynamodb(&sdk)).await;

        assert!(inner.connectors() >= 1);
    }

    /// The connector built like the SDK's, handed to the first request, over a real socket: a
    /// canned answer from a listener on a free port, and no connector asked of the inner client.
    #[tokio::test]
    async fn the_connector_built_during_init_talks_http_and_is_the_one_used() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("the request's connection");
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = socket.read(&mut buffer).await.expect("the request");
                assert!(
                    read > 0,
                    "the connection closed before the request's headers"
                );
                request.extend_from_slice(&buffer[..read]);
            }
            let body = r#"{"TableNames":["built"]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket
                .write_all(answer.as_bytes())
                .await
                .expect("the answer");
        });
        let inner = CountingClient::default();
        let settings = connector_settings(&crate::wiring::sdk_timeouts());
        let for_thread = settings.clone();
        let building = std::thread::spawn(move || build_like_the_sdk(&for_thread));
        let client = ConnectorOnFirstRequest::with_prebuilt(
            inner.clone().into_shared(),
            &settings,
            building,
        );
        let sdk = sdk_on(client).await;
        let dynamodb = crate::wiring::dynamodb_client(&sdk, Some(&format!("http://{address}")));

        let tables = dynamodb.list_tables().send().await.expect("the answer");

        assert_eq!(tables.table_names(), ["built"]);
        assert_eq!(inner.connectors(), 0);
        server.await.expect("the listener's task");
    }

    #[tokio::test]
    async fn the_default_client_and_the_offline_configuration_are_the_sdks_client_wrapped() {
        let offline = crate::wiring::offline_sdk_config().await;
        for client in [
            default_client_on_first_request().expect("the SDK's default client"),
            default_client_building_connector_now(&crate::wiring::sdk_timeouts())
                .expect("the Lambdas' client"),
            offline.http_client().expect("the configuration's client"),
        ] {
            assert!(format!("{client:?}").contains("ConnectorOnFirstRequest"));
            let metadata = client.connector_metadata().expect("the SDK's metadata");
            assert_eq!(metadata.name(), "hyper");
        }
    }
}
