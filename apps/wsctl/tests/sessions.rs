//! `wsctl disconnect|ban|unban|forget`: the documented control messages, on SQS (moto) and to the
//! local gateway's `@publish`; what the worker would refuse is refused before anything is sent.

use axum::http::StatusCode;
use domain::sessions::Control;
use serde_json::{Value, json};
use tests::sqs::{fresh_queue, receive_bodies, sqs_client, sqs_endpoint};

use crate::publish::{stand_in, stderr, stdout, wsctl};

#[tokio::test]
async fn each_control_reaches_the_local_gateway_as_its_documented_json() {
    let gateway = stand_in(StatusCode::ACCEPTED, r#"{"queued":true}"#).await;
    let cases: [(&[&str], Value); 4] = [
        (
            &[
                "disconnect",
                "--principal",
                "alice",
                "--reason",
                "logged out",
            ],
            json!({"disconnect": {"principal": "alice", "reason": "logged out"}}),
        ),
        (
            &["disconnect", "--connection", "L0SM9cOFvHcCIhw="],
            json!({"disconnect": {"connection": "L0SM9cOFvHcCIhw="}}),
        ),
        (
            &["unban", "--principal", "alice"],
            json!({"unban": {"principal": "alice"}}),
        ),
        (
            &["forget", "--principal", "alice", "--room", "lobby"],
            json!({"forget": {"principal": "alice", "rooms": ["lobby"]}}),
        ),
    ];
    for (args, expected) in &cases {
        let output = wsctl(&[args, &["--local", &gateway.base][..]].concat()).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(&printed, expected, "{args:?}");
    }
    let requests = gateway.requests.lock().unwrap().clone();
    let sent: Vec<Value> = requests
        .iter()
        .map(|(path, content_type, body)| {
            assert_eq!(path, "/local/@publish");
            assert_eq!(content_type, "application/json");
            serde_json::from_str(body).unwrap()
        })
        .collect();
    assert_eq!(sent, cases.map(|(_, expected)| expected).to_vec());
}

#[tokio::test]
async fn a_ban_through_sqs_queues_the_control_the_worker_reads() {
    let client = sqs_client().await;
    let url = fresh_queue(&client, "wsctl-ban").await;

    let output = wsctl(&[
        "ban",
        "--principal",
        "alice",
        "--for",
        "1h",
        "--reason",
        "spam",
        "--queue-url",
        &url,
        "--endpoint-url",
        &sqs_endpoint(),
    ])
    .await;

    assert!(output.status.success(), "{}", stderr(&output));
    let bodies = receive_bodies(&client, &url, 1).await;
    assert_eq!(bodies.len(), 1);
    assert!(Control::is_control(&bodies[0]));
    assert_eq!(
        serde_json::from_str::<Value>(&bodies[0]).unwrap(),
        json!({"ban": {"principal": "alice", "seconds": 3600, "reason": "spam"}})
    );
}

#[tokio::test]
async fn a_control_the_worker_would_refuse_is_refused_before_anything_is_sent() {
    let gateway = stand_in(StatusCode::ACCEPTED, "{}").await;
    for args in [
        &["ban", "--principal", "alice", "--for", "0s"][..],
        &["ban", "--principal", "alice", "--for", "400d"][..],
        &["ban", "--principal", "alice", "--for", "soon"][..],
        &[
            "disconnect",
            "--principal",
            "alice",
            "--reason",
            &"x".repeat(300),
        ][..],
        &["disconnect", "--principal", "alice", "--connection", "c"][..],
        &["forget", "--principal", "alice", "--room", "no spaces"][..],
    ] {
        let output = wsctl(&[args, &["--local", &gateway.base][..]].concat()).await;
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(!stderr(&output).is_empty(), "{args:?}: no reason given");
    }
    assert!(
        gateway.requests.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}
