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

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub(crate) use bus::Inspector;
pub(crate) use record::{CallRecord, InvocationRecord};
pub(crate) use shown::shown_event;

const INDEX_HTML: &str = include_str!("../../static/inspector/index.html");
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file the inspector and the console load, under `/inspector/`, by the name their pages
/// and imports use: one table, so a module imported but not served fails a test, not a browser.
pub(crate) const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        CSS,
        include_str!("../../static/inspector/style.css"),
    ),
    ("app.js", JS, include_str!("../../static/inspector/app.js")),
    (
        "chat.js",
        JS,
        include_str!("../../static/inspector/chat.js"),
    ),
    ("dom.js", JS, include_str!("../../static/inspector/dom.js")),
    (
        "lifecycle.js",
        JS,
        include_str!("../../static/inspector/lifecycle.js"),
    ),
    (
        "metrics.js",
        JS,
        include_str!("../../static/inspector/metrics.js"),
    ),
    ("console.js", JS, include_str!("../../static/console.js")),
    ("console.css", CSS, include_str!("../../static/console.css")),
    // The client library the chat view runs, the very files applications import.
    (
        "ws-client.js",
        JS,
        include_str!("../../../../clients/js/ws-client.js"),
    ),
    (
        "room-order.js",
        JS,
        include_str!("../../../../clients/js/room-order.js"),
    ),
    // The wire names the client and the console read, generated from the domain's declarations.
    (
        "protocol.js",
        JS,
        include_str!("../../../../clients/js/protocol.js"),
    ),
];

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

/// `/inspector/lifecycle`: the last lifecycle events, oldest first, as EventBridge would deliver
/// them (an empty list under `--deployment`, whose functions publish their own).
pub(crate) async fn lifecycle(State(recent): State<crate::lifecycle::Recent>) -> Response {
    let recent = recent
        .0
        .as_ref()
        .map_or_else(|| serde_json::json!([]), |events| events.recent());
    (
        [(header::CONTENT_TYPE, "application/json")],
        recent.to_string(),
    )
        .into_response()
}

/// `/inspector/{name}`: a file of [`ASSETS`], or 404.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(served, _, _)| *served == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a page or module loads by a relative or `/inspector/` path.
    fn loaded_names(text: &str) -> Vec<String> {
        let mut names = Vec::new();
        for quote in ['\'', '"'] {
            for prefix in ["./", "/inspector/"] {
                let opening = format!("{quote}{prefix}");
                for (at, _) in text.match_indices(&opening) {
                    let rest = &text[at + opening.len()..];
                    if let Some(end) = rest.find(quote) {
                        let name = &rest[..end];
                        if name.ends_with(".js") || name.ends_with(".css") {
                            names.push(name.to_owned());
                        }
                    }
                }
            }
        }
        names
    }

    #[test]
    fn every_file_a_page_or_module_loads_is_served() {
        let pages = [
            include_str!("../../static/inspector/index.html"),
            include_str!("../../static/index.html"),
        ];
        let texts = pages
            .iter()
            .copied()
            .chain(ASSETS.iter().map(|(_, _, body)| *body));
        let mut checked = 0;
        for text in texts {
            for name in loaded_names(text) {
                assert!(
                    ASSETS.iter().any(|(served, _, _)| *served == name),
                    "{name} is loaded but not in ASSETS"
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 6,
            "only {checked} loads found: is the scan still reading imports?"
        );
    }

    #[test]
    fn the_scan_sees_an_import_beside_the_module() {
        assert_eq!(
            loaded_names("import { RoomOrder } from './room-order.js';"),
            vec!["room-order.js".to_owned()]
        );
    }
}
