//! Wiring only: the verifier built once from the environment, then the runtime loop.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    adapters::telemetry::init_json();
    let verifier = adapters::auth::AuthConfig::from_env()?.verifier()?;
    adapters::lambda::serve_authorizer(verifier).await
}
