//! The local gateway's `@connections` API under arbitrary requests: any method, any (encoded)
//! id, any body. It must answer every one with a status API Gateway uses, and keep serving.

use std::time::Duration;

use local_gateway::RunningGateway;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALLOWED: [u16; 7] = [200, 204, 400, 403, 404, 410, 413];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn gateway() -> RunningGateway {
    tests::ws::gateway(&["--max-message-bytes", "2048"]).await
}

/// One raw HTTP/1.1 request, so the path reaches the server exactly as generated. It carries a
/// SigV4-shaped `Authorization` header, as every SDK call does: the gateway refuses unsigned ones.
async fn raw_request(gw: &RunningGateway, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut tcp = TcpStream::connect(gw.addr()).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/execute-api/aws4_request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        gw.addr(),
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.ok()?;
    tcp.write_all(body).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let status_line = String::from_utf8_lossy(&response[..response.len().min(32)]).to_string();
    status_line.split_whitespace().nth(1)?.parse().ok()
}

fn encoded_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9+/=]{0,20}",
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|bytes| {
            bytes
                .iter()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        }),
        "[!-~]{0,200}".prop_map(|s| s.replace(['?', '#', ' '], "")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(domain::testing::proptest_cases(300)))]

    #[test]
    fn every_request_gets_an_api_gateway_status_and_the_server_keeps_serving(
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]),
        stage in prop::sample::select(vec!["local", "prod", ""]),
        id in encoded_id(),
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let gw = gateway().await;
            let path = if stage.is_empty() { format!("/@connections/{id}") } else { format!("/{stage}/@connections/{id}") };
            let status = raw_request(&gw, method, &path, &body).await;
            // A request line hyper itself refuses is answered 400 or dropped; both are fine.
            if let Some(status) = status {
                prop_assert!(ALLOWED.contains(&status) || status == 405, "{method} {path} -> {status}");
            }
            let health = raw_request(&gw, "GET", "/local/@connections/AAAAAAAAAAAAAAA=", b"").await;
            prop_assert_eq!(health, Some(410), "the gateway stopped serving");
            Ok(())
        })?;
    }
}
