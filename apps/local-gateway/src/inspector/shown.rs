//! What the inspector keeps of an event for display: a copy in which credentials are hidden
//! (a screenshot of the page shared in a bug report must not carry one) and long bodies are cut.
//! The handler always gets the event as it was built.
//!
//! A browser sends the gateway every cookie it holds for `localhost` or `127.0.0.1`, whichever
//! other local app set them, and a client may carry a token in `Authorization` or in
//! `Sec-WebSocket-Protocol` (the one header a browser lets a page set on a WebSocket).

use serde_json::{Map, Value, json};

/// Bodies (messages, posted frames, responses) kept for display, in bytes: the rest is cut.
pub(crate) const MAX_SHOWN_BODY: usize = 4 * 1024;
/// Any other string of an event (a header's or a query parameter's value, the user agent).
pub(crate) const MAX_SHOWN_VALUE: usize = 1024;
/// A header's or a query parameter's name.
pub(crate) const MAX_SHOWN_NAME: usize = 128;
/// Entries of one map (the headers, the query parameters).
pub(crate) const MAX_SHOWN_ENTRIES: usize = 32;
/// Values of one list (a multi-value header's).
pub(crate) const MAX_SHOWN_VALUES: usize = 4;
/// The entry of a cut map that says how many entries were left out.
const NOT_SHOWN: &str = "…";

/// What a hidden credential looks like on the page.
pub(crate) const REDACTED: &str = "(hidden by the inspector)";

/// Headers whose values are hidden, lower-case (names are compared ignoring case).
const HIDDEN_HEADERS: &[&str] = &["cookie", "authorization", "sec-websocket-protocol"];

/// The event (or a response) as the inspector shows it: the `?token=` of a `$connect` hidden
/// (API Gateway WebSockets take tokens in the query string, since browsers cannot set headers on
/// a WebSocket), the values of [`HIDDEN_HEADERS`] hidden, the body cut to [`MAX_SHOWN_BODY`],
/// and everything else bounded by [`shown_value`]: a handshake with 300 KB of headers is kept
/// as a few KiB.
pub(crate) fn shown_event(event: &Value) -> Value {
    let Value::Object(fields) = event else {
        return shown_value(event);
    };
    let mut shown = Map::new();
    for (name, value) in fields {
        let mut value = match (name.as_str(), value) {
            ("body", Value::String(body)) => json!(shown_body(body)),
            _ => shown_value(value),
        };
        match name.as_str() {
            "queryStringParameters" | "multiValueQueryStringParameters" => {
                redact(&mut value, |name| name == "token");
            }
            "headers" | "multiValueHeaders" => redact(&mut value, |name| {
                HIDDEN_HEADERS
                    .iter()
                    .any(|hidden| name.eq_ignore_ascii_case(hidden))
            }),
            _ => {}
        }
        shown.insert(name.clone(), value);
    }
    Value::Object(shown)
}

/// A copy of `value` with every string cut to [`MAX_SHOWN_VALUE`] bytes, every map to its first
/// [`MAX_SHOWN_ENTRIES`] entries (names cut to [`MAX_SHOWN_NAME`]) and every list to its first
/// [`MAX_SHOWN_VALUES`] values, each cut saying what it left out.
pub(crate) fn shown_value(value: &Value) -> Value {
    match value {
        Value::String(text) => json!(shown_text(text, MAX_SHOWN_VALUE)),
        Value::Array(values) => {
            let mut shown: Vec<Value> = values
                .iter()
                .take(MAX_SHOWN_VALUES)
                .map(shown_value)
                .collect();
            if values.len() > MAX_SHOWN_VALUES {
                shown.push(json!(format!(
                    "{NOT_SHOWN} {} more not shown",
                    values.len() - MAX_SHOWN_VALUES
                )));
            }
            Value::Array(shown)
        }
        Value::Object(entries) => {
            let mut shown: Map<String, Value> = entries
                .iter()
                .take(MAX_SHOWN_ENTRIES)
                .map(|(name, value)| (shown_text(name, MAX_SHOWN_NAME), shown_value(value)))
                .collect();
            if entries.len() > MAX_SHOWN_ENTRIES {
                let left_out = entries.len() - MAX_SHOWN_ENTRIES;
                shown.insert(
                    NOT_SHOWN.into(),
                    json!(format!("{left_out} more not shown")),
                );
            }
            Value::Object(shown)
        }
        other => other.clone(),
    }
}

/// Replaces the value of every entry of the map `value` whose name `hidden` picks by
/// [`REDACTED`] (each value of a multi-value list).
fn redact(value: &mut Value, hidden: impl Fn(&str) -> bool) {
    let Value::Object(entries) = value else {
        return;
    };
    for (_, value) in entries.iter_mut().filter(|(name, _)| hidden(name)) {
        match value {
            Value::Array(values) => values.iter_mut().for_each(|v| *v = json!(REDACTED)),
            _ => *value = json!(REDACTED),
        }
    }
}

/// `text` cut to [`MAX_SHOWN_BODY`] bytes (on a character boundary), saying how much was cut.
pub(crate) fn shown_body(text: &str) -> String {
    shown_text(&without_token(text), MAX_SHOWN_BODY)
}

/// A `reauth`'s body with its token hidden; any other text as it is.
fn without_token(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("\"token\"") {
        return text.into();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut fields)) if fields.contains_key("token") => {
            fields.insert("token".into(), json!(REDACTED));
            Value::Object(fields).to_string().into()
        }
        _ => text.into(),
    }
}

/// `text` cut to `max` bytes (on a character boundary), saying how much was cut.
pub(crate) fn shown_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reauth_body_is_shown_without_its_token() {
        let shown = shown_body(r#"{"action":"reauth","token":"eyJhbGciOi.secret.sig"}"#);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains(REDACTED), "{shown}");
        assert_eq!(shown_body(r#"{"action":"ping"}"#), r#"{"action":"ping"}"#);
    }

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
    fn a_handshake_with_huge_headers_is_shown_cut_to_a_few_kib() {
        let huge = "x".repeat(10_000);
        let headers: Map<String, Value> = (0..100)
            .map(|i| (format!("x-pad-{i:03}"), json!(huge)))
            .collect();
        let multi: Map<String, Value> = (0..100)
            .map(|i| (format!("x-pad-{i:03}"), json!(vec![huge.clone(); 10])))
            .collect();
        let event = json!({
            "headers": headers,
            "multiValueHeaders": multi,
            "requestContext": {"identity": {"userAgent": huge}},
            "body": huge,
        });
        assert!(event.to_string().len() > 10_000_000);

        let shown = shown_event(&event);

        assert!(
            shown.to_string().len() < 200 * 1024,
            "{}",
            shown.to_string().len()
        );
        let headers = shown["headers"].as_object().unwrap();
        assert_eq!(headers.len(), MAX_SHOWN_ENTRIES + 1);
        assert_eq!(headers[NOT_SHOWN], "68 more not shown");
        let value = headers["x-pad-000"].as_str().unwrap();
        assert!(value.starts_with(&huge[..MAX_SHOWN_VALUE]));
        assert!(value.ends_with("(10000 bytes in all)"));
        let values = shown["multiValueHeaders"]["x-pad-000"].as_array().unwrap();
        assert_eq!(values.len(), MAX_SHOWN_VALUES + 1);
        assert_eq!(values[MAX_SHOWN_VALUES], "… 6 more not shown");
        let agent = shown["requestContext"]["identity"]["userAgent"]
            .as_str()
            .unwrap();
        assert!(agent.len() < MAX_SHOWN_VALUE + 64);
        assert!(shown["body"].as_str().unwrap().len() < MAX_SHOWN_BODY + 64);
    }

    #[test]
    fn long_names_are_cut_and_small_events_are_shown_whole() {
        let long_name = "n".repeat(1_000);
        let event =
            json!({"headers": {long_name: "v", "host": "127.0.0.1"}, "isBase64Encoded": false});

        let shown = shown_event(&event);

        let names: Vec<&String> = shown["headers"].as_object().unwrap().keys().collect();
        assert!(
            names
                .iter()
                .any(|n| n.len() < 200 && n.ends_with("(1000 bytes in all)"))
        );
        let small =
            json!({"headers": {"host": "127.0.0.1"}, "requestContext": {"routeKey": "$connect"}});
        assert_eq!(shown_event(&small), small);
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
