//! The domain's architecture invariants, checked by `cargo test`.

use std::path::Path;

use crate::protocol::{ACTIONS, ErrorCode};
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

#[test]
fn tidy_each_action_name_and_error_code_is_written_once_in_domain_src() {
    let sources = domain_sources();
    let names = ACTIONS
        .iter()
        .map(|spec| spec.name)
        .chain(ErrorCode::ALL.iter().map(|code| code.as_str()));
    for name in names {
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
        assert_eq!(places.len(), 1, "{quoted} is written at {places:?}");
    }
}

#[test]
fn tidy_no_unwrap_or_expect_in_domain_outside_tests() {
    let sources = domain_sources();
    assert!(sources.len() > 10, "the sources were found");
    assert_eq!(unwrap_or_expect_calls(&sources), Vec::<String>::new());
}
