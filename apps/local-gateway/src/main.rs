//! `cargo run -p local-gateway`: API Gateway's WebSocket side and `@connections` API on one local
//! port, running the same handler code as the Lambdas. No AWS account, no Docker.

use clap::Parser;
use local_gateway::{Options, exposure_warning, start};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    adapters::telemetry::init_text();
    let options = Options::parse();
    if let Some(subject) = &options.mint_token {
        println!("{}", options.minted_token(subject)?);
        return Ok(());
    }
    if let Some(warning) = exposure_warning(options.host) {
        tracing::warn!("{warning}");
        eprintln!("\n{warning}\n");
    }
    // Listen for Ctrl-C and SIGTERM before saying "ready": a supervisor (or a test) that stops
    // the process as soon as it is ready must not find the default handler that kills it at once.
    let terminated = termination_requested()?;
    let gateway = start(options.gateway_config().await?).await?;
    println!("local gateway ready");
    println!("  WebSocket:     {}", gateway.ws_url());
    println!(
        "  @connections:  {}/@connections/{{connectionId}}",
        gateway.management_url()
    );
    println!("  inspector:     {}", gateway.http_url());
    if let Some(path) = &options.deployment {
        println!(
            "  deployment:    {} functions from {} (their logs: each function's logFile)",
            gateway.functions().map_or(0, |f| f.names().count()),
            path.display()
        );
    } else {
        describe_delivery(&options, &gateway);
    }
    println!("Try: npx wscat -c {}", gateway.ws_url());
    terminated.await?;
    println!("shutting down: closing every socket with 1001 and running $disconnect");
    let functions = gateway.functions().cloned();
    gateway.shutdown().await;
    if let Some(functions) = functions {
        println!("what the deployment's functions did:");
        for (name, stats) in functions.stats() {
            println!("  {name}: {stats}");
        }
    }
    println!("stopped");
    Ok(())
}

fn describe_delivery(options: &Options, gateway: &local_gateway::RunningGateway) {
    match (gateway.publish_url(), gateway.delivery()) {
        (Some(url), Some(delivery)) => {
            println!(
                "  delivery:      {} workers on {}, {} ms per job, inline up to {} recipients",
                delivery.workers,
                delivery.transport.describe(),
                delivery.job_deadline.as_millis(),
                options
                    .service
                    .get(adapters::settings::INLINE_RECIPIENTS.name)
                    .unwrap_or_default()
            );
            println!(
                "  @publish:      POST {url} (local only: JSON body, no Origin), e.g. cargo run -p wsctl -- publish --local {} --room lobby --data '\"hi\"'",
                gateway.management_url()
            );
        }
        _ => println!("  delivery:      inline only (--workers 0), no @publish"),
    }
    if options.auth_is_on() {
        println!(
            "  authorizer:    on (connect with {}?token=<JWT>)",
            gateway.ws_url()
        );
    }
}

/// Ctrl-C in a terminal, SIGTERM from `docker stop`, systemd or an IDE's stop button. The
/// handlers are installed when this is called; the future resolves on the first signal.
fn termination_requested() -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>>
{
    #[cfg(unix)]
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // SIGTERM's handler is in place now; Ctrl-C's when the future is first polled, at once.
    let interrupted = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                interrupted = interrupted => interrupted,
                _ = sigterm.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        interrupted.await
    })
}
