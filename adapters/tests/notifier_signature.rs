//! The signed notifier signs a `PostToConnection` exactly as the SDK does: at a fixed time, with
//! fixed credentials, both clients send the same `Authorization`, `x-amz-date`,
//! `x-amz-security-token` and (absent) `x-amz-content-sha256` for the same request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use adapters::apigateway::{
    ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts, SignedNotifier,
};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_apigatewaymanagement::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_apigatewaymanagement::config::{
    ConfigBag, Credentials, Intercept, RuntimeComponents, SharedCredentialsProvider,
};
use aws_smithy_async::time::StaticTimeSource;
use aws_smithy_runtime_api::box_error::BoxError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use domain::ClientNotifier;
use domain::testing::id;
use tokio::net::TcpListener;

/// The headers that carry the signature, as the server received them.
const SIGNATURE_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

type Seen = Arc<Mutex<Vec<Vec<(String, Option<String>)>>>>;

async fn record(State(seen): State<Seen>, request: Request) -> StatusCode {
    let headers = SIGNATURE_HEADERS
        .iter()
        .map(|name| {
            let value = request.headers().get(*name);
            let value = value.map(|v| v.to_str().unwrap_or("not text").to_string());
            (name.to_string(), value)
        })
        .collect();
    seen.lock().unwrap().push(headers);
    StatusCode::OK
}

/// The SDK adds its own telemetry headers (`x-amz-user-agent`, a random invocation id, the attempt
/// count) before signing, and signs them. API Gateway requires none of them, and the signed
/// notifier does not send them: removed here, so the two requests carry the same headers and any
/// difference in the signature is a difference in how they sign.
#[derive(Debug)]
struct WithoutSdkTelemetry;

impl Intercept for WithoutSdkTelemetry {
    fn name(&self) -> &'static str {
        "WithoutSdkTelemetry"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        for name in [
            "x-amz-user-agent",
            "amz-sdk-invocation-id",
            "amz-sdk-request",
        ] {
            headers.remove(name);
        }
        Ok(())
    }
}

fn fixed_config() -> SdkConfig {
    let credentials = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token".to_string()),
        None,
        "fixed",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .time_source(StaticTimeSource::new(
            UNIX_EPOCH + Duration::from_secs(1_764_158_400),
        ))
        .build()
}

#[tokio::test]
async fn the_signed_notifier_signs_a_post_exactly_as_the_sdk_does() {
    let seen: Seen = Arc::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint =
        ManagementEndpoint::parse(&format!("http://{}/prod", listener.local_addr().unwrap()))
            .unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sdk = fixed_config();
    let timeouts = NotifierTimeouts::default();
    let reference = ApiGatewayNotifier::from_config(
        ApiGatewayNotifier::config(&sdk, &endpoint, timeouts)
            .interceptor(WithoutSdkTelemetry)
            .build(),
    );
    let signed = SignedNotifier::new(&sdk, &endpoint, timeouts).unwrap();

    let to = id("L0SM9cOFvHcCIhw=");
    reference.send(&to, br#"{"text":"hi"}"#).await.unwrap();
    signed.send(&to, br#"{"text":"hi"}"#).await.unwrap();
    server.abort();

    let seen = seen.lock().unwrap().clone();
    let [sdk_headers, signed_headers] = seen.as_slice() else {
        panic!("expected two requests, got {seen:?}");
    };
    assert_eq!(signed_headers, sdk_headers);
    let header = |name: &str| {
        sdk_headers
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .clone()
    };
    let authorization = header("authorization").expect("the SDK signs");
    assert!(
        authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251126/eu-west-1/execute-api/aws4_request"
        ),
        "{authorization}"
    );
    assert_eq!(header("x-amz-date").as_deref(), Some("20251126T120000Z"));
    assert!(
        authorization.contains(
            "SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-security-token,"
        ),
        "{authorization}"
    );
    assert_eq!(header("x-amz-content-sha256"), None);
}
