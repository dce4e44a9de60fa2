//! `wsctl inbox`: the inbox room of a principal, as the service names it.

use std::process::Command;

#[test]
fn wsctl_inbox_prints_the_inbox_every_vector_names() {
    let text = include_str!("../../../clients/js/test/inbox-vectors.json");
    let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
    for vector in vectors["vectors"].as_array().unwrap() {
        let principal = vector["principal"].as_str().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_wsctl"))
            .args(["inbox", principal])
            .output()
            .unwrap();
        assert!(output.status.success(), "{principal}");
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(printed.trim_end(), vector["inbox"], "{principal}");
    }
}

#[test]
fn wsctl_inbox_refuses_what_no_authorizer_could_vouch_for() {
    let output = Command::new(env!("CARGO_BIN_EXE_wsctl"))
        .args(["inbox", "a\u{7}b"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("control characters"));
}
