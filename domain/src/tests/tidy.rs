//! The domain's architecture invariants, checked by `cargo test`.

use std::path::Path;

use crate::actions::ACTIONS;
use crate::protocol::{ErrorCode, FRAMES};
use crate::testing::tidy::{production_sources, unwrap_or_expect_calls};

fn domain_sources() -> Vec<crate::testing::tidy::Source> {
    production_sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn tidy_domain_depends_on_no_aws_lambda_tokio_or_anyhow_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "domain",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(
        tree.lines().any(|l| l.starts_with("serde_json ")),
        "the tree was read: {tree}"
    );
    let forbidden: Vec<&str> = tree
        .lines()
        .filter(|l| {
            ["aws-", "aws_", "lambda_", "tokio ", "anyhow "]
                .iter()
                .any(|prefix| l.starts_with(prefix))
        })
        .collect();
    assert!(
        forbidden.is_empty(),
        "domain must stay pure, but depends on {forbidden:?}"
    );
}

/// Every action, frame and error code name, with how many declarations write it: one per concept
/// that uses the word (the action `members`, its frame, and that frame's field `members` are three).
fn wire_names() -> std::collections::BTreeMap<&'static str, usize> {
    let fields: std::collections::BTreeSet<&str> = ACTIONS
        .iter()
        .flat_map(|spec| spec.fields)
        .chain(FRAMES.iter().flat_map(|frame| frame.fields))
        .map(|field| field.name)
        .collect();
    let declared = ACTIONS
        .iter()
        .map(|spec| spec.name)
        .chain(FRAMES.iter().map(|frame| frame.name))
        .chain(ErrorCode::ALL.iter().map(|code| code.as_str()));
    let mut names = std::collections::BTreeMap::new();
    for name in declared {
        *names
            .entry(name)
            .or_insert(usize::from(fields.contains(name))) += 1;
    }
    // Other vocabularies that use the word: an AsyncAPI operation's `action: send`.
    *names.entry("send").or_insert(0) += 1;
    names
}

#[test]
fn tidy_each_action_frame_and_error_code_name_is_written_once_in_domain_src() {
    let sources = domain_sources();
    for (name, concepts) in wire_names() {
        let quoted = format!("\"{name}\"");
        let places: Vec<String> = sources
            .iter()
            .flat_map(|s| {
                s.text
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| line.contains(&quoted))
                    .map(|(n, _)| format!("{}:{}", s.path.display(), n + 1))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(places.len(), concepts, "{quoted} is written at {places:?}");
    }
}

#[test]
fn tidy_no_unwrap_or_expect_in_domain_outside_tests() {
    let sources = domain_sources();
    assert!(sources.len() > 10, "the sources were found");
    assert_eq!(unwrap_or_expect_calls(&sources), Vec::<String>::new());
}
