//! Rooms of real clients on a running gateway, and what each of them received.

use local_gateway::RunningGateway;
use serde_json::Value;

use crate::client::TestClient;

/// `n` clients in room `lobby`.
pub async fn room_of(gw: &RunningGateway, n: usize) -> Vec<TestClient> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let mut client = TestClient::connect(gw).await;
        client.join("lobby").await;
        clients.push(client);
    }
    clients
}

/// Each client's first `message` frame (each wait bounded by the client).
pub async fn first_messages(clients: &mut [TestClient]) -> Vec<Value> {
    let mut firsts = Vec::with_capacity(clients.len());
    for client in clients.iter_mut() {
        firsts.push(client.next_of_type("message").await);
    }
    firsts
}

/// Fails if any client received another `message` frame. Call it once nothing more can come
/// (the delivery queue drained): `drain` returns what was posted before it.
pub async fn assert_no_second_copy(clients: &mut [TestClient]) {
    for client in clients.iter_mut() {
        let more: Vec<Value> = client
            .drain()
            .await
            .into_iter()
            .filter(|f| f["type"] == "message")
            .collect();
        assert!(more.is_empty(), "{} got a second copy: {more:?}", client.id);
    }
}
