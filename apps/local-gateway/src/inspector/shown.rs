//! What the inspector keeps of an event for display: a copy in which credentials are hidden
//! (a screenshot of the page shared in a bug report must not carry one) and long bodies are cut.
//! The handler always gets the event as it was built.
//!
//! A browser sends the gateway every cookie it holds for `localhost` or `127.0.0.1`, whichever
//! other local app set them, and a client may carry a token in `Authorization` or in
//! `Sec-WebSocket-Protocol` (the one header a browser lets a page set on a WebSocket).

use serde_json::{Map, Value, json};

/// Bodies (messages, posted frames) kept for display, in bytes: the rest is cut.
pub(crate) const MAX_SHOWN_BODY: usize = 4 * 1024;

/// What a hidden credential looks like on the page.
pub(crate) const REDACTED: &str = "(hidden by the inspector)";

/// Headers whose values are hidden, lower-case (names are compared ignoring case).
const HIDDEN_HEADERS: &[&str] = &["cookie", "authorization", "sec-websocket-protocol"];

/// The event as the inspector shows it: the `?token=` of a `$connect` hidden (API Gateway
/// WebSockets take tokens in the query string, since browsers cannot set headers on a
/// WebSocket), the values of [`HIDDEN_HEADERS`] hidden, and the body cut to [`MAX_SHOWN_BODY`].
pub(crate) fn shown_event(event: &Value) -> Value {
    let Value::Object(fields) = event else {
        return event.clone();
    };
    let mut shown = Map::new();
    for (name, value) in fields {
        let value = match (name.as_str(), value) {
            ("body", Value::String(body)) => json!(shown_body(body)),
            ("queryStringParameters" | "multiValueQueryStringParameters", Value::Object(query)) => {
                Value::Object(redact(query, |name| name == "token"))
            }
            ("headers" | "multiValueHeaders", Value::Object(headers)) => {
                Value::Object(redact(headers, |name| {
                    HIDDEN_HEADERS
                        .iter()
                        .any(|hidden| name.eq_ignore_ascii_case(hidden))
                }))
            }
            _ => value.clone(),
        };
        shown.insert(name.clone(), value);
    }
    Value::Object(shown)
}

/// `map` with the value of every name `hidden` picks replaced by [`REDACTED`] (each value of a
/// multi-value list).
fn redact(map: &Map<String, Value>, hidden: impl Fn(&str) -> bool) -> Map<String, Value> {
    map.iter()
        .map(|(name, value)| {
            let value = match value {
                _ if !hidden(name) => value.clone(),
                Value::Array(values) => {
                    Value::Array(values.iter().map(|_| json!(REDACTED)).collect())
                }
                _ => json!(REDACTED),
            };
            (name.clone(), value)
        })
        .collect()
}

/// `text` cut to [`MAX_SHOWN_BODY`] bytes (on a character boundary), saying how much was cut.
pub(crate) fn shown_body(text: &str) -> String {
    if text.len() <= MAX_SHOWN_BODY {
        return text.to_string();
    }
    let mut end = MAX_SHOWN_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_event_is_shown_without_its_token() {
        let event = json!({
            "queryStringParameters": {"token": "eyJ.secret", "room": "lobby"},
            "multiValueQueryStringParameters": {"token": ["eyJ.secret"], "room": ["lobby"]},
            "requestContext": {"connectionId": "abc="},
        });

        let shown = shown_event(&event);

        assert!(!shown.to_string().contains("eyJ.secret"));
        assert_eq!(shown["queryStringParameters"]["token"], REDACTED);
        assert_eq!(shown["queryStringParameters"]["room"], "lobby");
        assert_eq!(shown["multiValueQueryStringParameters"]["room"][0], "lobby");
        assert_eq!(shown["requestContext"]["connectionId"], "abc=");
    }

    #[test]
    fn cookies_authorization_and_websocket_protocols_are_hidden_in_both_header_maps() {
        let event = json!({
            "headers": {
                "Cookie": "a=1; b=2",
                "authorization": "Bearer x",
                "sec-websocket-protocol": "token.y, chat",
                "user-agent": "test",
            },
            "multiValueHeaders": {
                "cookie": ["a=1", "b=2"],
                "AUTHORIZATION": ["Bearer x"],
                "Sec-WebSocket-Protocol": ["token.y, chat"],
                "user-agent": ["test"],
            },
        });

        let shown = shown_event(&event);

        let headers = &shown["headers"];
        assert_eq!(
            [
                &headers["Cookie"],
                &headers["authorization"],
                &headers["sec-websocket-protocol"]
            ],
            [REDACTED; 3]
        );
        assert_eq!(headers["user-agent"], "test");
        let multi = &shown["multiValueHeaders"];
        assert_eq!(multi["cookie"], json!([REDACTED, REDACTED]));
        assert_eq!(multi["AUTHORIZATION"], json!([REDACTED]));
        assert_eq!(multi["Sec-WebSocket-Protocol"], json!([REDACTED]));
        assert_eq!(multi["user-agent"], json!(["test"]));
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_SHOWN_BODY);

        let shown = shown_body(&long);

        assert!(shown.len() < long.len());
        assert!(shown.ends_with(&format!("({} bytes in all)", long.len())));
        assert_eq!(shown_body("short"), "short");
        assert_eq!(shown_event(&json!({"body": long}))["body"], shown);
    }
}
