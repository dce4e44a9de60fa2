//! The requests `DynamoConnectionRepository` sends, seen by a fake DynamoDB endpoint: what moto
//! cannot show, such as read consistency, which it ignores.

use std::sync::{Arc, Mutex};

use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use domain::{ConnectionRepository, RoomName, Timestamp};
use serde_json::Value;
use tokio::net::TcpListener;

/// Every request as (the operation from `x-amz-target`, the JSON body).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Answers every call with an empty, final page: enough for reads.
async fn fake_dynamodb(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: String,
) -> impl axum::response::IntoResponse {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("DynamoDB_20120810.")
        .to_string();
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((operation, body));
    (
        [("content-type", "application/x-amz-json-1.0")],
        r#"{"Count":0,"ScannedCount":0,"Items":[]}"#,
    )
}

struct FakeDynamo {
    repo: DynamoConnectionRepository,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDynamo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake() -> FakeDynamo {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(fake_dynamodb)
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(url)
        .build();
    let repo = DynamoConnectionRepository::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        DynamoSettings::new("connections"),
    );
    FakeDynamo { repo, seen, task }
}

fn the_only_query(seen: &Seen) -> Value {
    let seen = seen.lock().unwrap();
    let queries: Vec<&Value> = seen
        .iter()
        .filter(|(operation, _)| operation == "Query")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(queries.len(), 1, "{seen:?}");
    queries[0].clone()
}

#[tokio::test]
async fn room_members_are_read_with_a_consistent_query_so_a_fresh_join_is_not_missed() {
    let dynamo = fake().await;
    let room = RoomName::parse("lobby").unwrap();

    let page = dynamo
        .repo
        .members_of(&room, None, Timestamp::from_millis(1))
        .await
        .unwrap();

    assert!(page.items.is_empty() && page.next.is_none());
    let query = the_only_query(&dynamo.seen);
    assert_eq!(query["IndexName"], Value::Null, "the base table: {query}");
    assert_eq!(query["ConsistentRead"], Value::Bool(true), "{query}");
}

#[tokio::test]
async fn the_listing_index_is_read_without_consistent_read_which_a_gsi_refuses() {
    let dynamo = fake().await;

    dynamo
        .repo
        .all_connections(None, Timestamp::from_millis(1))
        .await
        .unwrap();

    let query = the_only_query(&dynamo.seen);
    assert_eq!(query["IndexName"], "connections", "{query}");
    assert_ne!(query["ConsistentRead"], Value::Bool(true), "{query}");
}
