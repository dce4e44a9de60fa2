//! The repository's invariants that no one crate governs, checked by `cargo test`.
//!
//! Every action, frame and error code is named once, in `domain` (its own tidy test counts
//! there): every other crate's production code and every client script reads the name from the
//! declarations (`domain::actions::ACTIONS`, `domain::protocol::FRAMES`, the generated
//! `clients/js/protocol.js`), so a rename is one edit and a client cannot speak an old name.

use std::path::{Path, PathBuf};

use domain::actions::ACTIONS;
use domain::protocol::{ErrorCode, FRAMES};
use domain::testing::tidy::production_sources;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wire_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = ACTIONS
        .iter()
        .map(|a| a.name)
        .chain(FRAMES.iter().map(|f| f.name))
        .chain(ErrorCode::WIRE.iter().copied())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Same word, other concept: `requestContext.identity` is API Gateway's, not the frame.
const OTHER_CONCEPTS: &[(&str, &str)] = &[
    ("apps/local-gateway/src/events.rs", "identity"),
    ("apps/local-gateway/src/management.rs", "identity"),
];

fn allowed(path: &Path, name: &str) -> bool {
    OTHER_CONCEPTS
        .iter()
        .any(|(file, word)| *word == name && path.ends_with(file))
}

/// The wire names `line` uses as one: the value of an `action`, a `type` or a `code`, as JSON, a
/// JavaScript object or a comparison writes it (`"action": "join"`, `type: 'ack'`,
/// `frame.type === 'error'`, `f["type"] == "identity"`). The same word as a DOM event or an
/// element id is another concept.
fn wire_uses<'a>(line: &str, names: &[&'a str]) -> Vec<&'a str> {
    let mut found = Vec::new();
    for key in ["action", "type", "code"] {
        let mut rest = line;
        while let Some(at) = rest.find(key) {
            let after = &rest[at + key.len()..];
            rest = after;
            let after = after.trim_start_matches(['"', '\'', ']', ' ']);
            let Some(after) = ["===", "!==", "==", "!=", ":"]
                .iter()
                .find_map(|op| after.strip_prefix(op))
            else {
                continue;
            };
            let after = after.trim_start();
            let Some(quote) = after
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\'' | '`'))
            else {
                continue;
            };
            let value: String = after[1..].chars().take_while(|c| *c != quote).collect();
            if let Some(name) = names.iter().find(|name| **name == value) {
                found.push(*name);
            }
        }
    }
    found
}

fn js_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("a directory of scripts")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "node_modules" && entry.file_name() != "test" {
                js_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "js")
            && !path.ends_with("clients/js/protocol.js")
        {
            found.push(path);
        }
    }
}

#[test]
fn tidy_no_wire_name_is_written_outside_domain_in_production_code_or_clients() {
    let root = root();
    let mut places = Vec::new();
    let names = wire_names();
    let mut rust = Vec::new();
    for dir in ["adapters/src", "apps"] {
        rust.extend(production_sources(&root.join(dir)));
    }
    assert!(
        rust.len() > 40,
        "the Rust sources were found: {}",
        rust.len()
    );
    let sources = rust
        .iter()
        .map(|source| (source.path.clone(), source.text.clone()));
    let mut scripts = Vec::new();
    js_files(&root.join("clients/js"), &mut scripts);
    js_files(&root.join("apps/local-gateway/static"), &mut scripts);
    assert!(scripts.len() >= 5, "the scripts were found: {scripts:?}");
    let scripts = scripts.into_iter().map(|path| {
        let text = std::fs::read_to_string(&path).expect("a readable script");
        (path, text)
    });
    for (path, text) in sources.chain(scripts) {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in wire_uses(code, &names) {
                if !allowed(&path, name) {
                    places.push(format!("{}:{}: {name:?}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        places.is_empty(),
        "wire names written outside domain (read them from domain's declarations, or \
         clients/js/protocol.js): {places:#?}"
    );
}

#[test]
fn tidy_a_wire_name_is_seen_where_it_is_used_as_one_and_only_there() {
    let names = ["join", "ack", "error", "identity"];
    assert_eq!(
        wire_uses(r#"json!({"action": "join", "room": "x"})"#, &names),
        ["join"]
    );
    assert_eq!(
        wire_uses("if (frame.type === 'ack') return;", &names),
        ["ack"]
    );
    assert_eq!(
        wire_uses(r#"f["type"] == "identity""#, &names),
        ["identity"]
    );
    assert_eq!(wire_uses("{ code: 'error' }", &names), ["error"]);
    assert!(wire_uses("socket.addEventListener('error', close)", &names).is_empty());
    assert!(wire_uses(r#"$("join").onclick = go"#, &names).is_empty());
}
