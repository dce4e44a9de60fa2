//! API Gateway WebSocket events, as API Gateway would send them to the integration.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{Value, json};

use crate::Gateway;

/// What every event of one connection shares.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at: i64,
    pub source_ip: String,
    pub user_agent: String,
    /// What the authorizer returned (`principalId` and its context), as API Gateway repeats it in
    /// `requestContext.authorizer` of every event of the connection.
    pub authorizer: Option<Value>,
}

/// An id in API Gateway's style: 16 characters of base64 (`L0SM9cOFvHcCIhw=`).
pub fn new_connection_id() -> String {
    let bytes = uuid::Uuid::new_v4();
    base64::engine::general_purpose::STANDARD.encode(&bytes.as_bytes()[..11])
}

fn new_request_id() -> String {
    let bytes = uuid::Uuid::new_v4();
    base64::engine::general_purpose::STANDARD.encode(&bytes.as_bytes()[..12])
}

pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn context(
    gateway: &Gateway,
    conn: &ConnectionContext,
    route_key: &str,
    event_type: &str,
) -> serde_json::Map<String, Value> {
    let now = time::OffsetDateTime::now_utc();
    let request_time = now
        .format(time::macros::format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let mut ctx = serde_json::Map::new();
    ctx.insert("routeKey".into(), json!(route_key));
    ctx.insert("eventType".into(), json!(event_type));
    ctx.insert("extendedRequestId".into(), json!(new_request_id()));
    ctx.insert("requestTime".into(), json!(request_time));
    ctx.insert("messageDirection".into(), json!("IN"));
    ctx.insert("stage".into(), json!(gateway.stage));
    ctx.insert("connectedAt".into(), json!(conn.connected_at));
    ctx.insert("requestTimeEpoch".into(), json!(now_millis()));
    ctx.insert(
        "identity".into(),
        json!({"sourceIp": conn.source_ip, "userAgent": conn.user_agent}),
    );
    ctx.insert("requestId".into(), json!(new_request_id()));
    ctx.insert("domainName".into(), json!(gateway.addr.to_string()));
    ctx.insert("connectionId".into(), json!(conn.connection_id));
    ctx.insert("apiId".into(), json!(gateway.api_id));
    if let Some(authorizer) = &conn.authorizer {
        ctx.insert("authorizer".into(), authorizer.clone());
    }
    ctx
}

/// The REQUEST authorizer event API Gateway sends before `$connect`.
pub fn authorize(
    gateway: &Gateway,
    conn: &ConnectionContext,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Value {
    let mut event = connect(gateway, conn, headers, query);
    event["type"] = json!("REQUEST");
    event["methodArn"] = json!(format!(
        "arn:aws:execute-api:local:000000000000:{}/{}/$connect",
        gateway.api_id, gateway.stage
    ));
    event
}

pub fn connect(
    gateway: &Gateway,
    conn: &ConnectionContext,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Value {
    let mut single = serde_json::Map::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        single.insert(name.to_string(), json!(value));
        multi
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    let multi_query: BTreeMap<&String, Vec<&String>> =
        query.iter().map(|(k, v)| (k, vec![v])).collect();
    let mut event = json!({
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": context(gateway, conn, "$connect", "CONNECT"),
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
        event["multiValueQueryStringParameters"] = json!(multi_query);
    }
    event
}

/// `$request.body.action`: the route is the body's `action` when a route of that name exists,
/// else `$default`. This template deploys `$default` only, so every message goes there.
pub fn select_route(body: &str, routes: &[&str]) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_string))
        .filter(|action| routes.contains(&action.as_str()))
        .unwrap_or_else(|| "$default".to_string())
}

pub fn message(gateway: &Gateway, conn: &ConnectionContext, body: MessageBody) -> Value {
    let (text, route_key, base64) = match body {
        MessageBody::Text(text) => {
            let route = select_route(&text, &[]);
            (text, route, false)
        }
        MessageBody::Binary(bytes) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "$default".to_string(),
            true,
        ),
    };
    let mut ctx = context(gateway, conn, &route_key, "MESSAGE");
    ctx.insert("messageId".into(), json!(new_request_id()));
    json!({
        "requestContext": ctx,
        "body": text,
        "isBase64Encoded": base64,
    })
}

pub enum MessageBody {
    Text(String),
    Binary(Vec<u8>),
}

pub fn disconnect(gateway: &Gateway, conn: &ConnectionContext, code: u16, reason: &str) -> Value {
    let mut ctx = context(gateway, conn, "$disconnect", "DISCONNECT");
    ctx.insert("disconnectStatusCode".into(), json!(code));
    ctx.insert("disconnectReason".into(), json!(reason));
    json!({
        "headers": {"Host": gateway.addr.to_string()},
        "requestContext": ctx,
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_look_like_api_gateway_ones() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(domain::ConnectionId::parse(id).is_ok());
    }

    #[test]
    fn routes_are_selected_by_the_body_action_with_default_as_fallback() {
        assert_eq!(select_route(r#"{"action":"join"}"#, &["join"]), "join");
        assert_eq!(select_route(r#"{"action":"join"}"#, &[]), "$default");
        assert_eq!(select_route("not json", &["join"]), "$default");
        assert_eq!(select_route(r#"{"action":7}"#, &["7"]), "$default");
    }
}
