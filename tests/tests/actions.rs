//! Each client action end to end: real sockets through the local gateway, written with the typed
//! client. A new action gets its test here.

use serde_json::json;
use tests::client::TestClient;
use tests::ws::gateway;

#[tokio::test]
async fn a_member_publishes_to_the_room_and_every_member_reads_it() {
    let gw = gateway(&[]).await;
    let mut alice = TestClient::connect(&gw).await;
    let mut bob = TestClient::connect(&gw).await;
    alice.join("lobby").await;
    bob.join("lobby").await;

    let ack = alice.publish("lobby", json!({"text": "hi"})).await;

    assert_eq!(
        ack["delivered"], 2,
        "echo to sender is on by default: {ack}"
    );
    let message = bob.next_of_type("message").await;
    assert_eq!(message["from"], alice.id.as_str());
    assert_eq!(message["room"], "lobby");
    assert_eq!(message["data"], json!({"text": "hi"}));
}
