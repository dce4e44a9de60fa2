//! The EventBridge adapter on moto: its signed `PutEvents` reaches a bus, and what a rule routes
//! on from it (to an SQS queue here) is the documented schema (docs/deploying.md, "Lifecycle
//! events"): `source` the stack's, `detail-type` the kind, `detail.version` 1.

use adapters::eventbridge::EventBridgeEvents;
use domain::lifecycle::{DisconnectReason, LifecycleEvent, LifecycleEvents, LifecycleKind};
use domain::{ConnectionId, Principal, RoomName, Timestamp};
use serde_json::{Value, json};
use tests::gateway_probes::raw_http_with_body;
use tests::sqs::{fresh_queue, queue_arn, receive_bodies, sqs_client, sqs_endpoint};

/// One EventBridge call to moto (which reads the service from the credential scope and does not
/// check the signature); panics unless it succeeds.
async fn eventbridge(target: &str, body: Value) {
    let endpoint = sqs_endpoint();
    let addr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("moto's endpoint is host:port");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AWSEvents.{target}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/events/aws4_request, SignedHeaders=host, Signature=0",
        endpoint.trim_start_matches("http://")
    );
    let (status, answer) = raw_http_with_body(addr, &head, &body.to_string()).await;
    assert_eq!(status, 200, "{target}: {answer}");
}

#[tokio::test]
async fn published_events_reach_a_rule_s_target_in_the_documented_schema() {
    let sqs = sqs_client().await;
    let queue = fresh_queue(&sqs, "lifecycle").await;
    let bus = format!("lifecycle-{}", uuid_like());
    eventbridge("CreateEventBus", json!({"Name": bus})).await;
    eventbridge(
        "PutRule",
        json!({"Name": "all", "EventBusName": bus, "EventPattern": json!({"source": ["ws-chat.ci"]}).to_string()}),
    )
    .await;
    eventbridge(
        "PutTargets",
        json!({"Rule": "all", "EventBusName": bus, "Targets": [{"Id": "q", "Arn": queue_arn(&sqs, &queue).await}]}),
    )
    .await;
    let sdk = adapters::wiring::offline_sdk_config().await;
    let events = EventBridgeEvents::new(&sdk, Some(&sqs_endpoint()), &bus, "ws-chat.ci").unwrap();
    let connection = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
    let principal = Principal::parse("alice").unwrap();
    let room = RoomName::parse("lobby").unwrap();
    let kinds = [
        LifecycleKind::Connected,
        LifecycleKind::Joined(room.clone()),
        LifecycleKind::Left(room),
        LifecycleKind::Disconnected(DisconnectReason::Kicked),
    ];
    for kind in kinds {
        events
            .publish(&LifecycleEvent {
                kind,
                connection: connection.clone(),
                principal: Some(principal.clone()),
                at: Timestamp::from_millis(1_700_000_000_000),
            })
            .await;
    }

    let mut received: Vec<Value> = Vec::new();
    for _ in 0..10 {
        for body in receive_bodies(&sqs, &queue, 1).await {
            received.push(serde_json::from_str(&body).unwrap());
        }
        if received.len() >= 4 {
            break;
        }
    }
    let mut kinds: Vec<_> = received
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["connected", "disconnected", "joined", "left"]);
    for event in &received {
        assert_eq!(event["source"], "ws-chat.ci");
        let detail = &event["detail"];
        assert_eq!(detail["version"], 1, "{event}");
        assert_eq!(detail["connectionId"], "L0SM9cOFvHcCIhw=");
        assert_eq!(detail["principal"], "alice");
        assert_eq!(detail["at"], 1_700_000_000_000u64);
        match event["detail-type"].as_str() {
            Some("joined" | "left") => assert_eq!(detail["room"], "lobby"),
            Some("disconnected") => assert_eq!(detail["reason"], "kicked"),
            _ => {}
        }
    }
}

fn uuid_like() -> String {
    format!("{:016x}", fastrand::u64(..))
}
