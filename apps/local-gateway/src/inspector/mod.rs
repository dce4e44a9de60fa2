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
/// The client library the chat view runs, the very file applications import.
const WS_CLIENT_JS: &str = include_str!("../../../../clients/js/ws-client.js");

/// The inspector page and its protocol console, rendered once for this gateway.
pub(crate) struct Pages {
    inspector: String,
    console: String,
}

impl Pages {
    /// Told the stage, and the idle timeout the chat view must ping within.
    pub fn new(stage: &str, idle_timeout: Duration) -> Self {
        let inspector = INDEX_HTML
            .replace("{{stage}}", &crate::chat_page::escape_attribute(stage))
            .replace("{{idle-timeout-secs}}", &idle_timeout.as_secs().to_string());
        Self {
            inspector,
            console: crate::chat_page::render(stage),
        }
    }

    /// The inspector page with its security headers (also served at `/`).
    pub fn inspector(&self) -> Response {
        (
            [
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            ],
            Html(self.inspector.clone()),
        )
            .into_response()
    }

    pub fn console(&self) -> Response {
        Html(self.console.clone()).into_response()
    }
}

/// What the inspector page may load and who may frame it: only this gateway. Client data is
/// never parsed as HTML (the page builds text nodes), and this is the second line: no inline or
/// foreign script runs, and no other site can put the page in a frame to click on it.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'self'; \
     base-uri 'none'";

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

pub(crate) async fn ws_client() -> Response {
    asset("text/javascript; charset=utf-8", WS_CLIENT_JS)
}
