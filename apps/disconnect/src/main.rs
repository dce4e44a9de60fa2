//! Wiring only: configuration, clients built once, the shared handler, the runtime loop.

use adapters::apigateway::inbound::Route;

// One thread: a sandbox handles one event at a time, its work is waiting on the network, and up
// to 1 769 MB it has at most one vCPU. A current_thread runtime costs about a quarter less CPU per
// @connections post than a multi-thread one (BENCHMARKS.md, "CPU per post").
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    adapters::telemetry::init_json();
    adapters::lambda::exit_code(run().await)
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let config = adapters::config::ServiceConfig::from_env()?;
    let handler = adapters::wiring::aws_handler(&config, Route::Disconnect).await?;
    adapters::lambda::serve(handler, Route::Disconnect).await
}
