//! The `@connections` management API, answering as API Gateway does (status, `x-amzn-ErrorType`,
//! JSON body). A request must carry a SigV4 `Authorization` header, as every SDK sends, and no
//! `Origin`, which every browser sends; the signature itself is not verified.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::ConnectionId;
use serde_json::json;

use crate::browser_safety::{ManagementRefusal, management_refusal};
use crate::gateway::Gateway;
use crate::inspector::CallRecord;
use crate::registry::PostError;
use crate::request_body::{self, BodyError};

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", kind.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    aws_error(StatusCode::GONE, "GoneException", "")
}

fn post_error(e: PostError) -> Response {
    match e {
        PostError::Gone => gone(),
        PostError::TooLarge => aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Message too long",
        ),
    }
}

fn iso8601(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// What API Gateway answers a request it will not serve: unsigned (as here) or signed badly.
fn refused(refusal: ManagementRefusal) -> Response {
    match refusal {
        ManagementRefusal::Unsigned => aws_error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        ManagementRefusal::FromABrowser => aws_error(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            "Forbidden: @connections does not answer web pages (the request has an Origin)",
        ),
    }
}

pub async fn connection(
    State(gateway): State<Arc<Gateway>>,
    Path((stage, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refusal) = management_refusal(&headers) {
        return refused(refusal);
    }
    if stage != gateway.api.stage {
        return aws_error(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
    serve(&gateway, &id, method, body).await
}

pub async fn connection_without_stage(
    State(gateway): State<Arc<Gateway>>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refusal) = management_refusal(&headers) {
        return refused(refusal);
    }
    serve(&gateway, &id, method, body).await
}

/// Serves the call, and shows it on the inspector page. Only a `POST` has its body read: up to
/// the message limit, within the handshake timeout.
async fn serve(gateway: &Gateway, raw_id: &str, method: Method, body: Body) -> Response {
    let shown_method = method.to_string();
    let limits = &gateway.limits;
    let body = match method {
        Method::POST => {
            request_body::read(body, limits.max_message_bytes, limits.handshake_timeout).await
        }
        _ => Ok(Bytes::new()),
    };
    let (response, body) = match body {
        Ok(body) => (answer(gateway, raw_id, method, &body), body),
        Err(e) => (body_refused(e), Bytes::new()),
    };
    gateway.inspector.call(CallRecord {
        at: crate::clock::now_millis(),
        method: &shown_method,
        connection_id: raw_id,
        status: response.status().as_u16(),
        body: &body,
    });
    response
}

/// The answer to a body that could not be read.
fn body_refused(error: BodyError) -> Response {
    match error {
        BodyError::TooLarge => post_error(PostError::TooLarge),
        BodyError::TimedOut => {
            let mut response = aws_error(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                "the request body did not come within --handshake-timeout-secs",
            );
            // The rest of the body may still come: the connection cannot serve another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        BodyError::Broken => aws_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "the request body broke off",
        ),
    }
}

fn answer(gateway: &Gateway, raw_id: &str, method: Method, body: &Bytes) -> Response {
    let Ok(id) = ConnectionId::parse(raw_id) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Invalid connectionId",
        );
    };
    match method {
        Method::POST => match gateway
            .sockets
            .post(&id, body, gateway.limits.max_message_bytes)
        {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => post_error(e),
        },
        Method::GET => {
            let sockets = gateway.sockets();
            // A socket already closing is gone, as its POSTs already say (410).
            let Some(socket) = sockets.get(&id).filter(|s| !s.outbox.is_closing()) else {
                return gone();
            };
            let info = json!({
                "connectedAt": iso8601(socket.connected_at),
                "identity": {"sourceIp": socket.source_ip, "userAgent": socket.user_agent},
                "lastActiveAt": iso8601(socket.last_active_at),
            });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                info.to_string(),
            )
                .into_response()
        }
        Method::DELETE => match gateway.sockets.close(&id) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => post_error(e),
        },
        other => aws_error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            &format!("{other} is not supported on @connections"),
        ),
    }
}
