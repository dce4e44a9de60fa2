//! The binary stops gracefully on SIGTERM (`docker stop`, systemd, an IDE's stop button), not
//! only on Ctrl-C: it closes every socket and runs their `$disconnect` before exiting.

#![cfg(unix)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sigterm_shuts_the_gateway_down_gracefully_and_it_exits_with_success() {
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_local-gateway"))
        .args(["--port", "0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the local-gateway binary starts");
    let mut stdout = BufReader::new(gateway.stdout.take().expect("piped stdout")).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            if line.starts_with("Try:") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the gateway did not get ready in time");
    assert!(ready, "the gateway exited before it was ready");

    let pid = gateway.id().expect("a running process").to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(signalled.success());

    let mut rest = Vec::new();
    let exit = tokio::time::timeout(WAIT, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            rest.push(line);
        }
        gateway.wait().await.expect("wait for the gateway")
    })
    .await
    .expect("the gateway did not stop in time");

    assert!(exit.success(), "exit status {exit:?}; output {rest:?}");
    assert!(rest.iter().any(|line| line == "stopped"), "{rest:?}");
}
