//! Wiring only: configuration, clients built once, the shared handler, the runtime loop.

use adapters::apigateway::inbound::Route;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    adapters::telemetry::init_json();
    let config = adapters::config::ServiceConfig::from_env()?;
    let handler = adapters::wiring::aws_handler(&config).await;
    adapters::lambda::serve(handler, Route::Disconnect).await
}
