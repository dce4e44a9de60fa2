//! Both `@connections` clients, the SDK-based `ApiGatewayNotifier` and the `SignedNotifier`,
//! against a real local HTTP server: every status API Gateway can answer maps to the right
//! `NotifyError`, and the URL each sends is the one API Gateway expects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::apigateway::{
    ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts, SignedNotifier,
};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::testing::id;
use domain::{ClientNotifier, NotifyError};
use tokio::net::TcpListener;

/// What the server saw: the raw request target, exactly as sent.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Answers according to the connection id: `s410` -> 410 with a body, `s410-empty` -> 410 with
/// none, `slow` -> answers after the client's read timeout.
async fn management_api(State(seen): State<Seen>, request: Request) -> Response {
    let target = request.uri().to_string();
    seen.lock()
        .unwrap()
        .push((request.method().to_string(), target.clone()));
    let id = target.rsplit('/').next().unwrap_or_default().to_string();
    let aws_error = |status: u16, kind: &str| {
        (
            StatusCode::from_u16(status).unwrap(),
            [("x-amzn-ErrorType", kind.to_string())],
            format!(r#"{{"message":"{kind}"}}"#),
        )
            .into_response()
    };
    match id.as_str() {
        "s200" => StatusCode::OK.into_response(),
        "s204" => StatusCode::NO_CONTENT.into_response(),
        "s400" => aws_error(400, "BadRequestException"),
        "s401" => aws_error(401, "UnauthorizedException"),
        "s403" => aws_error(403, "ForbiddenException"),
        "s404" => aws_error(404, "NotFoundException"),
        "s404-empty" => StatusCode::NOT_FOUND.into_response(),
        "s408" => StatusCode::REQUEST_TIMEOUT.into_response(),
        "s302" => (StatusCode::FOUND, [("location", "/elsewhere")]).into_response(),
        "s410" => aws_error(410, "GoneException"),
        "s410-empty" => StatusCode::GONE.into_response(),
        "s413" => aws_error(413, "PayloadTooLargeException"),
        "s429" => aws_error(429, "LimitExceededException"),
        "s500" => aws_error(500, "InternalServerErrorException"),
        "s502" => StatusCode::BAD_GATEWAY.into_response(),
        "s504" => StatusCode::GATEWAY_TIMEOUT.into_response(),
        "s503" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

struct Server {
    base: String,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_server() -> Server {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(management_api)
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { base, seen, task }
}

/// Each client under test, by name, built from the same config, endpoint and timeouts.
async fn notifiers(endpoint: &str) -> Vec<(&'static str, Box<dyn ClientNotifier>)> {
    let sdk = adapters::wiring::offline_sdk_config().await;
    let endpoint = ManagementEndpoint::parse(endpoint).unwrap();
    let timeouts = NotifierTimeouts {
        connect: Duration::from_millis(500),
        read: Duration::from_millis(300),
    };
    vec![
        (
            "sdk",
            Box::new(ApiGatewayNotifier::new(&sdk, &endpoint, timeouts)),
        ),
        (
            "signed",
            Box::new(SignedNotifier::new(&sdk, &endpoint, timeouts).unwrap()),
        ),
    ]
}

/// Whether a send's result is the one a case expects.
type Expectation = fn(&Result<(), NotifyError>) -> bool;

#[tokio::test]
async fn each_status_maps_to_the_outcome_the_domain_expects() {
    let server = start_server().await;
    let notifiers = notifiers(&format!("{}/dev", server.base)).await;

    let table: Vec<(&str, Expectation)> = vec![
        ("s200", |r| r.is_ok()),
        ("s204", |r| r.is_ok()),
        // No retry fixes these: a wrong endpoint, stage, base path or policy, or a bad request.
        ("s400", |r| matches!(r, Err(NotifyError::Forbidden(_)))),
        ("s401", |r| matches!(r, Err(NotifyError::Forbidden(_)))),
        ("s403", |r| matches!(r, Err(NotifyError::Forbidden(_)))),
        ("s404", |r| matches!(r, Err(NotifyError::Forbidden(_)))),
        ("s404-empty", |r| {
            matches!(r, Err(NotifyError::Forbidden(_)))
        }),
        ("s302", |r| matches!(r, Err(NotifyError::Forbidden(_)))),
        ("s410", |r| matches!(r, Err(NotifyError::Gone))),
        ("s410-empty", |r| matches!(r, Err(NotifyError::Gone))),
        ("s413", |r| matches!(r, Err(NotifyError::PayloadTooLarge))),
        ("s429", |r| matches!(r, Err(NotifyError::Throttled))),
        ("s500", |r| matches!(r, Err(NotifyError::Transient(_)))),
        ("s502", |r| matches!(r, Err(NotifyError::Transient(_)))),
        ("s503", |r| matches!(r, Err(NotifyError::Transient(_)))),
        ("s504", |r| matches!(r, Err(NotifyError::Transient(_)))),
        // The server timed the request out: worth another attempt.
        ("s408", |r| matches!(r, Err(NotifyError::Transient(_)))),
        ("slow", |r| matches!(r, Err(NotifyError::Transient(_)))),
    ];
    for (client, notifier) in &notifiers {
        for (case, expected) in &table {
            let result = notifier.send(&id(case), b"{}").await;
            assert!(expected(&result), "{client}, {case}: got {result:?}");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for (client, notifier) in notifiers(&format!("http://127.0.0.1:{port}/dev")).await {
        let result = notifier.send(&id("s200"), b"{}").await;

        assert!(
            matches!(result, Err(NotifyError::Transient(_))),
            "{client}: {result:?}"
        );
    }
}

#[tokio::test]
async fn the_url_keeps_the_stage_and_encodes_the_connection_id_exactly_once() {
    let server = start_server().await;
    for (client, notifier) in notifiers(&format!("{}/prod/", server.base)).await {
        server.seen.lock().unwrap().clear();

        notifier.send(&id("L0SM9cOFvHcCIhw="), b"hi").await.unwrap();
        notifier.disconnect(&id("a+b/c")).await.unwrap();

        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                (
                    "POST".to_string(),
                    "/prod/@connections/L0SM9cOFvHcCIhw%3D".to_string()
                ),
                (
                    "DELETE".to_string(),
                    "/prod/@connections/a%2Bb%2Fc".to_string()
                ),
            ],
            "{client}"
        );
    }
}
