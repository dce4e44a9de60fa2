//! Wiring only: the verifier built once from the environment, then the runtime loop.

// One thread: a sandbox handles one event at a time, checks one token per event (the key set is
// fetched rarely) and up to 1 769 MB has at most one vCPU; worker threads would only add wake-ups.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    adapters::telemetry::init_json();
    adapters::lambda::exit_code(run().await)
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let verifier = adapters::auth::AuthConfig::from_env()?.verifier()?;
    adapters::lambda::serve_authorizer(verifier).await
}
