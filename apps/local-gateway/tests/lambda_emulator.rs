//! The Lambda emulator runs a function as Lambda does: one process per instance, reused while
//! warm, each with its own Runtime API, its environment and deadline, at most its reserved
//! concurrency at once; failures come back typed. The function here is a small Python script
//! speaking the Runtime API (`fixtures/fake_function.py`), told how to misbehave.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use local_gateway::lambda::{FunctionSpec, Functions, InvokeError};
use serde_json::{Value, json};

fn fake(behaviour: &str) -> FunctionSpec {
    FunctionSpec {
        name: "fake".into(),
        bootstrap: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fake_function.py"),
        environment: BTreeMap::from([
            ("FAKE_BEHAVIOUR".to_owned(), behaviour.to_owned()),
            (
                "CONNECTIONS_TABLE".to_owned(),
                "ws-chat-ci-connections".to_owned(),
            ),
        ]),
        timeout: Duration::from_secs(5),
        memory_mb: 256,
        reserved_concurrency: None,
        log_file: None,
    }
}

fn functions(spec: FunctionSpec) -> Functions {
    Functions::new([spec])
}

#[tokio::test]
async fn an_invocation_hands_the_event_with_the_function_s_environment_and_deadline() {
    let functions = functions(fake("echo"));

    let answer = functions
        .invoke("fake", &json!({"hello": "there"}))
        .await
        .unwrap();

    assert_eq!(answer["event"], json!({"hello": "there"}));
    assert_eq!(answer["table"], "ws-chat-ci-connections");
    assert_eq!(answer["memory"], "256");
    assert_eq!(answer["name"], "fake");
    assert_eq!(
        answer["home"],
        Value::Null,
        "nothing of the host's environment leaks in"
    );
    let left = answer["msLeft"].as_i64().unwrap();
    assert!(
        (3_000..=5_000).contains(&left),
        "the deadline is the timeout away: {left} ms"
    );
}

#[tokio::test]
async fn a_warm_instance_is_reused_and_only_the_first_invocation_is_a_cold_start() {
    let functions = functions(fake("echo"));

    let first = functions.invoke("fake", &json!({})).await.unwrap();
    let second = functions.invoke("fake", &json!({})).await.unwrap();

    assert_eq!(first["pid"], second["pid"]);
    assert_ne!(first["requestId"], second["requestId"]);
    let stats = &functions.stats()["fake"];
    assert_eq!((stats.invocations, stats.cold_starts), (2, 1));
    assert_eq!(stats.init_times.len(), 1);
}

#[tokio::test]
async fn reserved_concurrency_caps_the_instances_and_the_rest_wait_their_turn() {
    let mut spec = fake("echo");
    spec.reserved_concurrency = Some(1);
    let functions = functions(spec);
    let started = Instant::now();

    let slow = json!({"sleep": 0.3});
    let (a, b) = tokio::join!(
        functions.invoke("fake", &slow),
        functions.invoke("fake", &slow)
    );

    assert_eq!(
        a.unwrap()["pid"],
        b.unwrap()["pid"],
        "one instance served both"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "one after the other"
    );
    assert_eq!(functions.stats()["fake"].cold_starts, 1);
}

#[tokio::test]
async fn without_a_cap_concurrent_invocations_get_instances_of_their_own() {
    let functions = functions(fake("echo"));

    let slow = json!({"sleep": 0.3});
    let (a, b) = tokio::join!(
        functions.invoke("fake", &slow),
        functions.invoke("fake", &slow)
    );

    assert_ne!(a.unwrap()["pid"], b.unwrap()["pid"]);
    assert_eq!(functions.stats()["fake"].cold_starts, 2);
}

#[tokio::test]
async fn a_function_error_is_reported_with_its_type_and_message_and_the_instance_stays_warm() {
    let functions = functions(fake("echo"));

    let failed = functions
        .invoke("fake", &json!({"fail": true}))
        .await
        .unwrap_err();
    functions.invoke("fake", &json!({})).await.unwrap();

    assert_eq!(
        failed,
        InvokeError::Failed {
            function: "fake".into(),
            error_type: "Boom".into(),
            message: "it broke".into()
        }
    );
    assert_eq!(functions.stats()["fake"].cold_starts, 1);
}

#[tokio::test]
async fn an_invocation_past_its_timeout_fails_and_its_instance_is_replaced() {
    let mut spec = fake("echo");
    spec.timeout = Duration::from_secs(1);
    let functions = functions(spec);

    let timed_out = functions
        .invoke("fake", &json!({"sleep": 30}))
        .await
        .unwrap_err();
    let next = functions.invoke("fake", &json!({})).await;

    assert!(
        matches!(timed_out, InvokeError::TimedOut { .. }),
        "{timed_out:?}"
    );
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(functions.stats()["fake"].cold_starts, 2);
}

#[tokio::test]
async fn a_process_that_dies_during_an_invocation_is_a_crash_and_is_replaced() {
    let functions = functions(fake("echo"));

    let crashed = functions
        .invoke("fake", &json!({"crash": true}))
        .await
        .unwrap_err();
    let next = functions.invoke("fake", &json!({})).await;

    assert!(
        matches!(&crashed, InvokeError::Crashed { message, .. } if message.contains("exit status")),
        "{crashed:?}"
    );
    assert!(next.is_ok());
    assert_eq!(functions.stats()["fake"].cold_starts, 2);
}

#[tokio::test]
async fn an_init_error_says_what_the_function_reported() {
    let functions = functions(fake("init-error"));

    let failed = functions.invoke("fake", &json!({})).await.unwrap_err();

    assert!(
        matches!(&failed, InvokeError::InitFailed { message, .. } if message.contains("CONNECTIONS_TABLE is not set")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn an_init_error_ends_the_instance_at_once_even_if_its_process_lingers() {
    let functions = functions(fake("init-error-and-linger"));

    let failed = tokio::time::timeout(Duration::from_secs(5), functions.invoke("fake", &json!({})))
        .await
        .expect("no wait for the init timeout");

    assert!(
        matches!(failed, Err(InvokeError::InitFailed { .. })),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_process_that_exits_before_its_first_event_failed_its_init_with_its_last_error() {
    let functions = functions(fake("exit-at-init"));

    let failed = functions.invoke("fake", &json!({})).await.unwrap_err();

    assert!(
        matches!(&failed, InvokeError::InitFailed { message, .. }
            if message.contains("cannot read JWT_SECRET") && message.contains("exit status: 3")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_bootstrap_that_cannot_run_and_an_unknown_function_are_errors_not_hangs() {
    let mut missing = fake("echo");
    missing.bootstrap = PathBuf::from("/nonexistent/bootstrap");
    let functions = functions(missing);

    let cannot_run = functions.invoke("fake", &json!({})).await.unwrap_err();
    let unknown = functions.invoke("nope", &json!({})).await.unwrap_err();

    assert!(
        matches!(&cannot_run, InvokeError::InitFailed { message, .. } if message.contains("/nonexistent/bootstrap"))
    );
    assert_eq!(unknown, InvokeError::UnknownFunction("nope".into()));
}

#[tokio::test]
async fn each_line_a_function_prints_lands_in_its_log_file() {
    let log = std::env::temp_dir().join(format!("emulator-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut spec = fake("echo");
    spec.log_file = Some(log.clone());
    let functions = functions(spec);

    let answer = functions.invoke("fake", &json!({})).await.unwrap();

    let wanted = format!("handling {}", answer["requestId"].as_str().unwrap());
    let mut logged = String::new();
    for _ in 0..50 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains(&wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(&log);
    assert!(logged.lines().any(|line| line == wanted), "{logged:?}");
}
