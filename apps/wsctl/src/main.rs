//! `wsctl`: what a backend or an operator does without a WebSocket.
//!
//! - `wsctl publish`: one message to a room, to everyone or to one connection. The message is a
//!   backend's delivery job in its documented JSON form (`domain::delivery::job`), sent to the
//!   backend queue (`--queue-url`) or to the local gateway's `POST {local}/@publish`. Prints the
//!   message id on success; exits 1 with the reason otherwise.
//! - `wsctl inbox PRINCIPAL`: the private inbox room of a principal (`RoomName::inbox_of`), for a
//!   backend that publishes to one user.

mod job;
mod send;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wsctl",
    version,
    about = "Publishes messages to WebSocket clients from a backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish one message; prints its id.
    Publish(Publish),
    /// Print the private inbox room of a principal (a token's `sub`): `user:{principal}`, or
    /// `user:x.{hash}` for a principal that is not a room name.
    Inbox {
        /// The principal, as the authorizer sees it (`auth0|64b1...`, `alice@example.com`).
        principal: String,
    },
}

#[derive(Args)]
pub struct Publish {
    #[command(flatten)]
    pub target: Target,
    /// The message's `data`: any JSON value (`'{"text":"hi"}'`, `'"plain text"'`, `42`), or
    /// `@FILE` to read it from a file, `-` from standard input.
    #[arg(long)]
    pub data: String,
    /// The message id every copy carries (clients drop duplicates by it); random when absent.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub via: Via,
    #[command(flatten)]
    pub aws: Aws,
}

/// Exactly one of these names who receives the message.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// Every member of this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Every connection.
    #[arg(long)]
    pub everyone: bool,
    /// One connection, by its API Gateway connection id.
    #[arg(long)]
    pub connection: Option<String>,
}

/// Where the message goes: exactly one of the SQS queue and the local gateway.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Via {
    /// The delivery queue (the stack output DeliveryQueueUrl). Credentials come from the AWS
    /// default chain (environment, profile, instance role).
    #[arg(long)]
    pub queue_url: Option<String>,
    /// The local gateway's base URL, such as http://127.0.0.1:3001/local.
    #[arg(long)]
    pub local: Option<String>,
}

/// SQS settings, with --queue-url only.
#[derive(Args)]
pub struct Aws {
    /// An SQS-compatible endpoint instead of AWS's (moto, LocalStack). With --queue-url only.
    #[arg(long, conflicts_with = "local")]
    pub endpoint_url: Option<String>,
    /// The queue's region, when the default chain's is not it. With --queue-url only.
    #[arg(long, conflicts_with = "local")]
    pub region: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let publish = match Cli::parse().command {
        Command::Publish(publish) => publish,
        Command::Inbox { principal } => return inbox(&principal),
    };
    match send::publish(publish).await {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inbox(principal: &str) -> ExitCode {
    match domain::Principal::parse(principal) {
        Ok(principal) => {
            println!("{}", domain::RoomName::inbox_of(&principal));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wsctl: not a principal: {e}");
            ExitCode::FAILURE
        }
    }
}
