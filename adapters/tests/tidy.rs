//! The adapters' architecture invariants, checked by `cargo test`.

use std::path::Path;

use adapters::dynamodb::ATTRIBUTE_NAMES;
use domain::testing::tidy::{Source, production_sources, string_literals, unwrap_or_expect_calls};

fn adapter_sources() -> Vec<Source> {
    let sources = production_sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(sources.len() > 15, "the sources were found");
    sources
}

#[test]
fn tidy_no_scan_anywhere() {
    let scans: Vec<_> = adapter_sources()
        .into_iter()
        .filter(|s| s.text.contains(".scan()") || s.text.contains("ScanInput"))
        .map(|s| s.path)
        .collect();
    assert!(
        scans.is_empty(),
        "a Scan reads every item of the table: {scans:?}"
    );
}

#[test]
fn tidy_dynamodb_attribute_names_are_written_only_in_the_codec() {
    let mut found = Vec::new();
    for source in adapter_sources() {
        // Only the DynamoDB adapter speaks to the table; elsewhere `principal` is an event field.
        let in_dynamodb = source
            .path
            .components()
            .any(|c| c.as_os_str() == "dynamodb");
        if !in_dynamodb || source.path.ends_with("dynamodb/codec.rs") {
            continue;
        }
        for literal in string_literals(&source.text) {
            for word in attribute_like_words(&literal) {
                if ATTRIBUTE_NAMES.contains(&word) {
                    found.push(format!(
                        "{}: {word:?} in {literal:?}",
                        source.path.display()
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "use the codec's constants: {found:#?}");
}

#[test]
fn tidy_no_unwrap_or_expect_in_adapters_outside_tests() {
    assert_eq!(
        unwrap_or_expect_calls(&adapter_sources()),
        Vec::<String>::new()
    );
}

/// The words of a literal that could name an attribute: `:value` placeholders are not names.
fn attribute_like_words(literal: &str) -> Vec<&str> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut words = Vec::new();
    let mut start = None;
    for (at, c) in literal.char_indices().chain([(literal.len(), ' ')]) {
        match (start, is_word(c)) {
            (None, true) => start = Some(at),
            (Some(from), false) => {
                if !literal[..from].ends_with(':') {
                    words.push(&literal[from..at]);
                }
                start = None;
            }
            _ => {}
        }
    }
    words
}

#[test]
fn tidy_attribute_like_words_skip_value_placeholders() {
    assert_eq!(
        attribute_like_words("#x = :pk AND ttl"),
        vec!["x", "AND", "ttl"]
    );
}

/// `sdk_http::lambda_sdk_loader` builds the connector the SDK's default client would, with
/// `aws-smithy-http-client`'s builder: with two versions of that crate in the build, it could
/// build with one while the SDK's client is the other's, and no test would notice.
#[test]
fn tidy_one_aws_smithy_http_client_in_the_build() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    let versions = lock
        .lines()
        .filter(|line| *line == "name = \"aws-smithy-http-client\"")
        .count();
    assert_eq!(
        versions, 1,
        "aws-smithy-http-client appears {versions} times in Cargo.lock"
    );
}
