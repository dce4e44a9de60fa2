//! `cargo run -p local-gateway`: API Gateway's WebSocket side and `@connections` API on one local
//! port, running the same handler code as the Lambdas. No AWS account, no Docker.

use clap::Parser;
use local_gateway::{Options, start};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    adapters::telemetry::init_text();
    let options = Options::parse();
    if let Some(subject) = &options.mint_token {
        println!("{}", options.minted_token(subject)?);
        return Ok(());
    }
    let gateway = start(options.gateway_config().await?).await?;
    println!("local gateway ready");
    println!("  WebSocket:     {}", gateway.ws_url());
    println!(
        "  @connections:  {}/@connections/{{connectionId}}",
        gateway.management_url()
    );
    println!("  browser chat:  {}", gateway.http_url());
    if options.jwt_secret.is_some() || options.jwks_url.is_some() {
        println!(
            "  authorizer:    on (connect with {}?token=<JWT>)",
            gateway.ws_url()
        );
    }
    println!("Try: npx wscat -c {}", gateway.ws_url());
    tokio::signal::ctrl_c().await?;
    println!("shutting down: closing every socket with 1001 and running $disconnect");
    gateway.shutdown().await;
    Ok(())
}
