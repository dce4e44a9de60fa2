//! The inspector: a live page of what the gateway sees (connections, rooms, invocations,
//! `@connections` calls, metrics) beside a chat view built on `clients/js/ws-client.js`.
//!
//! - [`bus`]: the bounded history and live feed the gateway records into.
//! - [`record`]: what the gateway records, typed (an invocation, a `@connections` call).
//! - [`shown`]: what the page may show of an event (no credentials, bodies cut).
//! - [`stream`]: the feed as Server-Sent Events, for the gateway's own pages only.
//! - this module: the page's static files, served from the binary (no CDN, no internet).

pub(crate) mod bus;
pub(crate) mod record;
pub(crate) mod shown;
pub(crate) mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

pub(crate) use bus::Inspector;
pub(crate) use record::{CallRecord, InvocationRecord};
pub(crate) use shown::shown_event;

const INDEX_HTML: &str = include_str!("../../static/inspector/index.html");
const STYLE_CSS: &str = include_str!("../../static/inspector/style.css");
const APP_JS: &str = include_str!("../../static/inspector/app.js");
const CHAT_JS: &str = include_str!("../../static/inspector/chat.js");
const DOM_JS: &str = include_str!("../../static/inspector/dom.js");
const METRICS_JS: &str = include_str!("../../static/inspector/metrics.js");
const CONSOLE_JS: &str = include_str!("../../static/console.js");
const CONSOLE_CSS: &str = include_str!("../../static/console.css");
/// The client library the chat view runs, the very file applications import.
const WS_CLIENT_JS: &str = include_str!("../../../../clients/js/ws-client.js");
/// The wire names the client and the console read, generated from the domain's declarations.
const PROTOCOL_JS: &str = include_str!("../../../../clients/js/protocol.js");

/// The inspector page and its protocol console, rendered once for this gateway.
pub(crate) struct Pages {
    inspector: String,
    console: String,
}

impl Pages {
    /// Told the stage, the idle timeout the chat view must ping within, and whether there is one.
    pub fn new(stage: &str, idle_timeout: Duration, chat_view: bool) -> Self {
        let inspector = INDEX_HTML
            .replace("{{stage}}", &crate::chat_page::escape_attribute(stage))
            .replace("{{idle-timeout-secs}}", &idle_timeout.as_secs().to_string())
            .replace("{{chat-view}}", if chat_view { "on" } else { "off" });
        Self {
            inspector,
            console: crate::chat_page::render(stage),
        }
    }

    /// The inspector page with its security headers (also served at `/`).
    pub fn inspector(&self) -> Response {
        (
            [
                (header::CONTENT_SECURITY_POLICY, INSPECTOR_POLICY),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            Html(self.inspector.clone()),
        )
            .into_response()
    }

    /// The protocol console with its security headers: only the gateway's own pages frame it.
    pub fn console(&self) -> Response {
        (
            [
                (header::CONTENT_SECURITY_POLICY, CONSOLE_POLICY),
                (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            ],
            Html(self.console.clone()),
        )
            .into_response()
    }
}

/// What the inspector page may load, and that no page may frame it. Client data is never parsed
/// as HTML (the page builds text nodes), and this is the second line: no inline or foreign
/// script runs, and no page can put the inspector in a frame to click on it.
pub(crate) const INSPECTOR_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'";

/// The protocol console's: the same, but the inspector frames it (its second tab), and it may
/// open a WebSocket to any URL typed into it (a deployed stage, say).
pub(crate) const CONSOLE_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
     frame-ancestors 'self'; base-uri 'none'";

pub(crate) async fn page(State(pages): State<Arc<Pages>>) -> Response {
    pages.inspector()
}

pub(crate) async fn console(State(pages): State<Arc<Pages>>) -> Response {
    pages.console()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

pub(crate) async fn app() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn chat() -> Response {
    asset("text/javascript; charset=utf-8", CHAT_JS)
}

pub(crate) async fn dom() -> Response {
    asset("text/javascript; charset=utf-8", DOM_JS)
}

pub(crate) async fn metrics() -> Response {
    asset("text/javascript; charset=utf-8", METRICS_JS)
}

pub(crate) async fn console_js() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

pub(crate) async fn console_css() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

pub(crate) async fn ws_client() -> Response {
    asset("text/javascript; charset=utf-8", WS_CLIENT_JS)
}

pub(crate) async fn protocol() -> Response {
    asset("text/javascript; charset=utf-8", PROTOCOL_JS)
}
