//! A Lambda that cannot start says why in one readable JSON log line, not in a `Debug` dump.

use std::process::Command;

#[test]
fn a_missing_setting_is_logged_by_name_as_json_and_the_process_exits_with_failure() {
    let out = Command::new(env!("CARGO_BIN_EXE_default"))
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "started without any configuration");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON log line in {stdout:?}"));
    assert_eq!(line["message"], "the function could not start", "{line}");
    let error = line["error"].as_str().unwrap_or_default();
    assert!(error.contains("CONNECTIONS_TABLE"), "{error}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Error:"),
        "the Debug form reached stderr: {stderr}"
    );
}
