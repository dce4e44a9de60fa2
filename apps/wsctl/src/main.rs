//! `wsctl`: what a backend or an operator does without a WebSocket.
//!
//! - `wsctl publish`: one message to a room, to everyone or to one connection. The message is a
//!   backend's delivery job in its documented JSON form (`domain::delivery::job`), sent to the
//!   backend queue (`--queue-url`) or to the local gateway's `POST {local}/@publish`. Prints the
//!   message id on success; exits 1 with the reason otherwise.
//! - `wsctl inbox PRINCIPAL`: the private inbox room of a principal (`RoomName::inbox_of`), for a
//!   backend that publishes to one user.
//! - `wsctl disconnect|ban|unban|forget`: a control message on the same queue
//!   (`domain::sessions`, docs/deploying.md, "Controlling sessions from a backend"). Prints the
//!   message sent.

mod job;
mod send;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use domain::sessions::{self, Control};

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
    /// Close a principal's sockets, or one socket: each gets a `closing` frame (`kicked`) first.
    Disconnect {
        #[command(flatten)]
        who: Who,
        /// Why, shown to the client in the `closing` frame (at most 256 bytes).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        via: Via,
        #[command(flatten)]
        aws: Aws,
    },
    /// Close a principal's sockets (`banned`) and refuse its new connections (403) for a while.
    Ban {
        #[arg(long)]
        principal: String,
        /// How long: `90s`, `30m`, `1h`, `7d` (at most a year).
        #[arg(long = "for", value_parser = duration)]
        ban_for: std::time::Duration,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        via: Via,
        #[command(flatten)]
        aws: Aws,
    },
    /// Lift a principal's ban.
    Unban {
        #[arg(long)]
        principal: String,
        #[command(flatten)]
        via: Via,
        #[command(flatten)]
        aws: Aws,
    },
    /// Disconnect a principal and delete what is kept of it: its rows, memberships, ban and
    /// messages in the rooms it is in and in each --room.
    Forget {
        #[arg(long)]
        principal: String,
        /// Also redact its messages in this room's history (repeat for more rooms).
        #[arg(long = "room")]
        rooms: Vec<String>,
        #[command(flatten)]
        via: Via,
        #[command(flatten)]
        aws: Aws,
    },
}

/// Exactly one of these names whom `disconnect` closes.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Who {
    /// Every socket of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    /// One socket, by its API Gateway connection id.
    #[arg(long)]
    pub connection: Option<String>,
}

/// `90s`, `30m`, `1h`, `7d`, or plain seconds.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a number and a unit (90s, 30m, 1h, 7d)"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is one of s, m, h, d")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(seconds)))
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
    let (message, via, aws) = match Cli::parse().command {
        Command::Publish(publish) => return publish_one(publish).await,
        Command::Inbox { principal } => return inbox(&principal),
        Command::Disconnect {
            who,
            reason,
            via,
            aws,
        } => (disconnect(who, reason), via, aws),
        Command::Ban {
            principal: who,
            ban_for,
            reason,
            via,
            aws,
        } => {
            let ban = principal(who).map(|principal| Control::Ban {
                principal,
                ban_for,
                reason,
            });
            (ban, via, aws)
        }
        Command::Unban {
            principal: who,
            via,
            aws,
        } => (
            principal(who).map(|principal| Control::Unban { principal }),
            via,
            aws,
        ),
        Command::Forget {
            principal: who,
            rooms,
            via,
            aws,
        } => (forget(who, rooms), via, aws),
    };
    control(message, via, aws).await
}

fn disconnect(who: Who, reason: Option<String>) -> Result<Control, String> {
    let target = match (who.principal, who.connection) {
        (Some(p), _) => sessions::Target::Principal(principal(p)?),
        (_, Some(c)) => sessions::Target::Connection(
            domain::ConnectionId::parse(c).map_err(|e| format!("--connection: {e}"))?,
        ),
        _ => return Err("give --principal or --connection".into()),
    };
    Ok(Control::Disconnect { target, reason })
}

fn forget(who: String, rooms: Vec<String>) -> Result<Control, String> {
    let rooms = rooms
        .into_iter()
        .map(|r| domain::RoomName::parse(r).map_err(|e| format!("--room: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Control::Forget {
        principal: principal(who)?,
        rooms,
    })
}

async fn publish_one(publish: Publish) -> ExitCode {
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

fn principal(text: String) -> Result<domain::Principal, String> {
    domain::Principal::parse(text).map_err(|e| format!("--principal: {e}"))
}

/// Checks a control message as the worker will (a bad one is refused here, never queued), and
/// sends it.
async fn control(control: Result<Control, String>, via: Via, aws: Aws) -> ExitCode {
    let sent = async {
        let control = control?;
        // The worker's own parser: what it would refuse is refused now.
        Control::from_json(&control.to_json()).map_err(|e| e.to_string())?;
        send::control(&control, &via, &aws).await?;
        Ok::<_, String>(control.to_json())
    };
    match sent.await {
        Ok(json) => {
            println!("{json}");
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
