//! `wsctl publish` run as a user runs it: against SQS on moto, and against a stand-in for the
//! local gateway's `@publish` route that records what it got.

use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use domain::delivery::{DeliveryJob, JobTarget};
use domain::testing::room;
use tests::rooms::{first_messages, room_of};
use tests::sqs::{StackQueues, fresh_queue, receive_bodies, sqs_client, sqs_endpoint};
use tests::ws::gateway;
use tokio::net::TcpListener;

pub(crate) async fn wsctl(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_wsctl"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .expect("wsctl runs")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// (path, content type, body) of each request.
pub(crate) type Requests = Arc<Mutex<Vec<(String, String, String)>>>;

/// A stand-in for the local gateway that answers every request with `status` and `body`.
pub(crate) struct StandIn {
    pub(crate) base: String,
    pub(crate) requests: Requests,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn stand_in(status: StatusCode, answer: &'static str) -> StandIn {
    let requests = Requests::default();
    let seen = requests.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock()
                .unwrap()
                .push((uri.path().to_owned(), content_type, body));
            (status, [("content-type", "application/json")], answer).into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/local", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    StandIn {
        base,
        requests,
        task,
    }
}

#[tokio::test]
async fn publish_to_a_room_through_sqs_queues_the_documented_job_under_the_printed_id() {
    let client = sqs_client().await;
    let url = fresh_queue(&client, "wsctl").await;

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        r#"{"text":"hi"}"#,
        "--queue-url",
        &url,
        "--endpoint-url",
        &sqs_endpoint(),
        "--region",
        "us-east-1",
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    let bodies = receive_bodies(&client, &url, 1).await;
    assert_eq!(bodies.len(), 1);
    let job = DeliveryJob::from_json(&bodies[0]).unwrap();
    assert_eq!(job.target, JobTarget::Room(room("lobby")));
    assert_eq!(job.data.get(), r#"{"text":"hi"}"#);
    assert_eq!(job.from, None, "a backend's message has no sender");
    assert_eq!(job.id.map(|id| id.to_string()), Some(stdout(&output)));
}

#[tokio::test]
async fn publish_with_a_chosen_id_to_one_connection_through_sqs_keeps_that_id() {
    let client = sqs_client().await;
    let url = fresh_queue(&client, "wsctl").await;

    let output = wsctl(&[
        "publish",
        "--connection",
        "abc123=",
        "--data",
        "42",
        "--id",
        "order-7",
        "--queue-url",
        &url,
        "--endpoint-url",
        &sqs_endpoint(),
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "order-7");
    let bodies = receive_bodies(&client, &url, 1).await;
    assert_eq!(
        bodies,
        vec![r#"{"id":"order-7","connection":"abc123=","data":42}"#.to_owned()]
    );
}

#[tokio::test]
async fn publish_to_everyone_locally_posts_the_job_as_json_and_prints_the_gateways_id() {
    let gateway = stand_in(StatusCode::ACCEPTED, r#"{"id":"local-42"}"#).await;

    let output = wsctl(&[
        "publish",
        "--everyone",
        "--data",
        r#""maintenance at 18:00""#,
        "--local",
        &gateway.base,
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "local-42");
    let requests = gateway.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![(
            "/local/@publish".to_owned(),
            "application/json".to_owned(),
            r#"{"everyone":true,"data":"maintenance at 18:00"}"#.to_owned()
        )]
    );
}

#[tokio::test]
async fn data_is_read_from_a_file_after_an_at_sign() {
    let gateway = stand_in(StatusCode::ACCEPTED, r#"{"id":"local-43"}"#).await;
    let file = std::env::temp_dir().join(format!("wsctl-data-{}.json", std::process::id()));
    std::fs::write(&file, "{\"text\": \"from a file\"}\n").unwrap();

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        &format!("@{}", file.display()),
        "--local",
        &gateway.base,
    ])
    .await;

    let _ = std::fs::remove_file(&file);
    assert!(output.status.success(), "{}", stderr(&output));
    let requests = gateway.requests.lock().unwrap().clone();
    assert_eq!(
        requests[0].2,
        r#"{"room":"lobby","data":{"text": "from a file"}}"#
    );
}

#[tokio::test]
async fn a_refusal_from_the_local_gateway_is_printed_and_exits_non_zero() {
    let gateway = stand_in(
        StatusCode::BAD_REQUEST,
        r#"{"error":"field \"room\" is invalid"}"#,
    )
    .await;

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        "1",
        "--local",
        &gateway.base,
    ])
    .await;

    assert!(!output.status.success());
    assert!(stderr(&output).contains("400"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(r#"field \"room\" is invalid"#),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
}

#[tokio::test]
async fn data_that_is_not_json_is_refused_before_anything_is_sent() {
    let gateway = stand_in(StatusCode::ACCEPTED, r#"{"id":"x"}"#).await;

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        "{text: hi}",
        "--local",
        &gateway.base,
    ])
    .await;

    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--data is not valid JSON"),
        "{}",
        stderr(&output)
    );
    assert!(
        gateway.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_message_too_large_to_ever_be_framed_is_refused_before_anything_is_sent() {
    let gateway = stand_in(StatusCode::ACCEPTED, r#"{"id":"x"}"#).await;
    // Under SQS's 256 KB, over API Gateway's 128 KB: a job no worker could ever deliver.
    let file = std::env::temp_dir().join(format!("wsctl-large-{}.json", std::process::id()));
    std::fs::write(&file, format!("\"{}\"", "x".repeat(200 * 1024))).unwrap();

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        &format!("@{}", file.display()),
        "--local",
        &gateway.base,
    ])
    .await;

    let _ = std::fs::remove_file(&file);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("could never be delivered"),
        "{}",
        stderr(&output)
    );
    assert!(
        gateway.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn two_targets_no_target_no_destination_or_sqs_flags_with_local_are_refused() {
    for args in [
        &[
            "publish",
            "--room",
            "a",
            "--everyone",
            "--data",
            "1",
            "--local",
            "http://127.0.0.1:9",
        ][..],
        &["publish", "--data", "1", "--local", "http://127.0.0.1:9"][..],
        &["publish", "--room", "a", "--data", "1"][..],
        &[
            "publish",
            "--room",
            "a",
            "--data",
            "1",
            "--local",
            "http://127.0.0.1:9",
            "--region",
            "eu-west-1",
        ][..],
    ] {
        let output = wsctl(args).await;
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&output).contains("Usage"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

// End to end: wsctl, then the real local gateway, then real sockets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_locally_reaches_each_member_of_the_room_with_the_printed_id() {
    let gw = gateway(&["--presence-max-members", "0"]).await;
    let mut clients = room_of(&gw, 3).await;

    let output = wsctl(&[
        "publish",
        "--local",
        &gw.management_url(),
        "--room",
        "lobby",
        "--data",
        r#"{"text":"hi"}"#,
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    for message in first_messages(&mut clients).await {
        assert_eq!(message["id"], stdout(&output), "{message}");
        assert_eq!(message["data"], serde_json::json!({"text": "hi"}));
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_through_sqs_reaches_the_room_through_a_gateway_polling_that_queue() {
    let queues = StackQueues::fresh(&sqs_client().await, "wsctl-e2e", 3).await;
    let (url, endpoint) = (queues.backend.clone(), sqs_endpoint());
    let mut flags = queues.gateway_flags();
    flags.extend(["--presence-max-members", "0"].map(str::to_owned));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let gw = gateway(&flags).await;
    let mut clients = room_of(&gw, 3).await;

    let output = wsctl(&[
        "publish",
        "--room",
        "lobby",
        "--data",
        r#""from the shell""#,
        "--queue-url",
        &url,
        "--endpoint-url",
        &endpoint,
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    for message in first_messages(&mut clients).await {
        assert_eq!(message["id"], stdout(&output), "{message}");
        assert_eq!(message["data"], "from the shell");
        assert!(message.get("from").is_none(), "{message}");
    }
    gw.shutdown().await;
}
