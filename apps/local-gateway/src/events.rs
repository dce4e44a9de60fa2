//! API Gateway WebSocket events, as API Gateway would send them to the integration.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{Value, json};

use crate::clock::now_millis;

/// The integration a route invokes. In AWS each is its own Lambda function with its own
/// concurrency, so `$connect` and `$disconnect` never wait behind a flood of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Connect,
    Default,
    Disconnect,
}

impl Route {
    /// The route key, as in `requestContext.routeKey`.
    pub fn key(self) -> &'static str {
        match self {
            Route::Connect => "$connect",
            Route::Default => "$default",
            Route::Disconnect => "$disconnect",
        }
    }
}

/// The API the events come from: what every event's `requestContext` says about it.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    pub stage: String,
    /// `requestContext.apiId`, and the region and account of its ARNs.
    pub name: ApiName,
    /// Where the gateway listens: `requestContext.domainName`.
    pub addr: SocketAddr,
}

/// How an API is named in its events and ARNs: `local` unless a deployment names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiName {
    pub id: String,
    pub region: String,
    pub account_id: String,
}

impl Default for ApiName {
    fn default() -> Self {
        Self {
            id: "local".into(),
            region: "local".into(),
            account_id: "000000000000".into(),
        }
    }
}

/// What every event of one connection shares.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at: i64,
    pub source_ip: String,
    pub user_agent: String,
    /// The authorizer's `principalId`, when it ran.
    pub principal: Option<String>,
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

fn context(
    api: &Api,
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
    ctx.insert("stage".into(), json!(api.stage));
    ctx.insert("connectedAt".into(), json!(conn.connected_at));
    ctx.insert("requestTimeEpoch".into(), json!(now_millis()));
    ctx.insert(
        "identity".into(),
        json!({"sourceIp": conn.source_ip, "userAgent": conn.user_agent}),
    );
    ctx.insert("requestId".into(), json!(new_request_id()));
    ctx.insert("domainName".into(), json!(api.addr.to_string()));
    ctx.insert("connectionId".into(), json!(conn.connection_id));
    ctx.insert("apiId".into(), json!(api.name.id));
    if let Some(authorizer) = &conn.authorizer {
        ctx.insert("authorizer".into(), authorizer.clone());
    }
    ctx
}

/// The REQUEST authorizer event API Gateway sends before `$connect`.
pub fn authorize(
    api: &Api,
    conn: &ConnectionContext,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Value {
    let mut event = connect(api, conn, headers, query);
    event["type"] = json!("REQUEST");
    event["methodArn"] = json!(format!(
        "arn:aws:execute-api:{}:{}:{}/{}/$connect",
        api.name.region, api.name.account_id, api.name.id, api.stage
    ));
    event
}

pub fn connect(
    api: &Api,
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
        "requestContext": context(api, conn, "$connect", "CONNECT"),
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
        event["multiValueQueryStringParameters"] = json!(multi_query);
    }
    event
}

/// Every message goes to `$default`: this template deploys no other message route, so API
/// Gateway's route selection (`$request.body.action`) always falls back to it. Under
/// `--deployment` the routes select again from the deployment's own.
pub fn message(api: &Api, conn: &ConnectionContext, body: String) -> Value {
    let mut ctx = context(api, conn, "$default", "MESSAGE");
    ctx.insert("messageId".into(), json!(new_request_id()));
    json!({
        "requestContext": ctx,
        "body": body,
        "isBase64Encoded": false,
    })
}

pub fn disconnect(api: &Api, conn: &ConnectionContext, code: u16, reason: &str) -> Value {
    let mut ctx = context(api, conn, "$disconnect", "DISCONNECT");
    ctx.insert("disconnectStatusCode".into(), json!(code));
    ctx.insert("disconnectReason".into(), json!(reason));
    json!({
        "headers": {"Host": api.addr.to_string()},
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
}
