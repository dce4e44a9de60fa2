//! `cargo run --release -p bench -- <scenario>`: prints Markdown tables of medians for BENCHMARKS.md.
//! `--quick` runs a scenario with tiny sizes: `./scripts/test` uses it to prove the benchmarks still
//! work, and asserts no speed.

mod artifacts;
mod cold_start;
mod cpu;
mod cpu_post;
mod dynamo_requests;
mod endpoint_stub;
mod fanout;
mod fanout_queue;
mod floor_notifier;
mod gateway_load;
mod handler;
mod management_stub;
mod precise_sleep;
mod rate_limit;
mod rate_window;
mod room_stream;
mod sleeping_notifier;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use adapters::apigateway::NotifierClient;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks of the template, all on 127.0.0.1")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Tiny sizes, one run: proves the scenario works, measures nothing worth recording.
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// Broadcast through a real @connections client to a local @connections server.
    Fanout {
        /// `signed` (the Lambdas' default) or `sdk`.
        #[arg(long, default_value_t = NotifierClient::default())]
        notifier: NotifierClient,
        #[arg(long, default_value_t = 20)]
        delay_ms: u64,
        #[arg(long, default_value_t = 0.05)]
        gone_share: f64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        recipients: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256,1024")]
        concurrency: Vec<usize>,
        /// `cold`: a new notifier (empty connection pool) per run; `warm`: one per row, warmed
        /// by an untimed broadcast.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "cold,warm")]
        pool: Vec<fanout::Pool>,
        /// Broadcast on a current_thread runtime, as the Lambdas do (default: this bench's
        /// multi-thread runtime, as the figures before it were taken).
        #[arg(long)]
        current_thread: bool,
        /// `broadcast`: an invocation without a queue; `job`: a fan-out worker's job continuing a
        /// room from a cursor (the `fanout` Lambda's large broadcasts).
        #[arg(long, value_enum, default_value = "broadcast")]
        via: fanout::Via,
        /// Each page read waits this long, as DynamoDB's `Query` does.
        #[arg(long, default_value_t = 0)]
        page_read_ms: u64,
    },
    /// CPU per @connections post, for each client on each tokio runtime.
    CpuPost {
        #[arg(long, default_value_t = 20_000)]
        posts: usize,
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Only these clients (a profiler's run of one of them).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "sdk,signed,floor"
        )]
        notifier: Vec<cpu_post::Client>,
        /// Only these runtimes.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "current-thread,multi-thread"
        )]
        runtime: Vec<cpu_post::Flavor>,
    },
    /// A room broadcast through the delivery queue: W workers, each job under a short deadline.
    FanoutQueue {
        #[arg(long, default_value_t = 100_000)]
        members: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        workers: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        delay_ms: u64,
        /// The simulated invocation deadline of each job: short, so pages outlast it.
        #[arg(long, default_value_t = 7_000)]
        job_deadline_ms: u64,
        /// No post starts within this of the deadline (the Lambdas' minimum, 5 s).
        #[arg(long, default_value_t = 5_000)]
        margin_ms: u64,
        /// The throttling run: the stub answers 429 above this many posts a second.
        #[arg(long, default_value_t = 10_000)]
        throttle_above: u64,
        /// What answers the posts: `http` (the signed client to the stub in a child process) and
        /// `in-process` (a notifier sleeping D: the design without the HTTP stack's CPU).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "http,in-process"
        )]
        stub: Vec<fanout_queue::StubKind>,
        /// Only the throttled pass (the largest worker count, posts answered 429 above
        /// --throttle-above): the run that sizes a very large room, without the hours the
        /// unthrottled passes would take at a million members on 2 cores.
        #[arg(long)]
        only_throttled: bool,
    },
    /// The local @connections server the scenarios above start as a child process.
    #[command(hide = true)]
    ManagementStub {
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        #[arg(long)]
        throttle_above: Option<u64>,
    },
    /// Process start to first `next` and to first response of the release `default` Lambda.
    ColdStart {
        /// What `cargo lambda build --release --x86-64` built (the zip holds this binary as `bootstrap`).
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-gnu/release/default"
        )]
        binary: PathBuf,
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..))]
        starts: u16,
        /// The first events, each started `starts` times, alternately: `ping` calls no AWS
        /// service, `join` reads DynamoDB first (and so builds the SDK's connector).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "ping,join")]
        event: Vec<cold_start::FirstEvent>,
        /// Given to the function as SSL_CERT_FILE, as infra/serverless.yml does (there the Amazon
        /// Linux bundle): the root certificates are then read from that one file.
        #[arg(long)]
        ssl_cert_file: Option<PathBuf>,
    },
    /// Zip sizes of the Lambda artifacts.
    Artifacts {
        #[arg(long, default_value = "target/lambda")]
        dir: PathBuf,
        /// Where the unzipped binaries are.
        #[arg(long, default_value = "target/x86_64-unknown-linux-gnu/release")]
        binaries: PathBuf,
    },
    /// The local gateway with 100, 1 000 and 10 000 clients.
    GatewayLoad {
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-gnu/release/local-gateway"
        )]
        binary: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        clients: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        room_size: usize,
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Extra arguments for the gateway, e.g. --gateway-arg=--notifier --gateway-arg=in-process.
        #[arg(long, allow_hyphen_values = true)]
        gateway_arg: Vec<String>,
    },
    /// The local gateway for many minutes: RSS and open files sampled (not in CI).
    Soak {
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-gnu/release/local-gateway"
        )]
        binary: PathBuf,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        room_size: usize,
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        #[arg(long, default_value_t = 30)]
        every_seconds: u64,
        #[arg(long, allow_hyphen_values = true)]
        gateway_arg: Vec<String>,
    },
    /// Domain + in-memory adapters: publishes to a room, no network.
    Handler {
        #[arg(long, default_value_t = 10)]
        room_size: usize,
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// What room streams cost and sustain: `seq` and history per publish (latency, DynamoDB
    /// requests, write units, dollars), the highest rate one room takes, and a rejoin's replay of
    /// the messages a member missed; in memory, and on DynamoDB when an endpoint is given.
    RoomStream {
        /// A DynamoDB-compatible server (./scripts/test starts moto and sets this variable);
        /// without it, memory only.
        #[arg(long, env = "TEST_DYNAMODB_ENDPOINT")]
        dynamodb_endpoint: Option<String>,
        #[arg(long, default_value_t = 300)]
        messages: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// How long the senders publish to one room in the sustained-rate runs.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 8)]
        senders: usize,
        /// Messages a member missed before it rejoins with `since` (at most the replay's 1 000).
        #[arg(long, default_value_t = 1_000)]
        missed: u64,
    },
    /// What the rate limit adds per message: latency and DynamoDB requests, against moto.
    RateLimit {
        /// A DynamoDB-compatible server (./scripts/test starts moto and sets this variable).
        #[arg(long, env = "TEST_DYNAMODB_ENDPOINT")]
        dynamodb_endpoint: String,
        #[arg(long, default_value_t = 300)]
        messages: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

/// A connection that never expires, for scenarios that are not about expiry.
pub fn forever(raw: &str) -> domain::Connection {
    domain::Connection {
        id: domain::ConnectionId::parse(raw).expect("a valid id"),
        connected_at: domain::Timestamp::from_millis(0),
        expires_at: domain::Timestamp::from_millis(u64::MAX),
        principal: None,
        source_ip: None,
        user_agent: None,
        metadata: None,
        token_expires_at: None,
        reauth_grants: None,
    }
}

/// Dummy credentials and a fixed region: nothing here may reach AWS.
pub use adapters::wiring::offline_sdk_config as local_sdk_config;

fn raise_open_file_limit() {
    if let Ok((_, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(hard, hard);
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    raise_open_file_limit();
    let cli = Cli::parse();
    let quick = cli.quick;
    match cli.scenario {
        Scenario::Fanout {
            notifier,
            delay_ms,
            gone_share,
            runs,
            recipients,
            concurrency,
            pool,
            current_thread,
            via,
            page_read_ms,
        } => {
            let args = if quick {
                fanout::Args {
                    recipients: vec![50],
                    concurrency: vec![1, 16],
                    delay: Duration::from_millis(2),
                    gone_share,
                    runs: 1,
                    max_lower_bound: Duration::from_secs(5),
                    notifier,
                    pools: pool,
                    via,
                    page_read: Duration::from_millis(page_read_ms.min(5)),
                }
            } else {
                fanout::Args {
                    recipients,
                    concurrency,
                    delay: Duration::from_millis(delay_ms),
                    gone_share,
                    runs,
                    max_lower_bound: Duration::from_secs(60),
                    notifier,
                    pools: pool,
                    via,
                    page_read: Duration::from_millis(page_read_ms),
                }
            };
            if current_thread {
                // A thread of its own: a runtime cannot be started inside this one.
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("runtime: {e}"))?
                        .block_on(fanout::run(args))
                })
                .join()
                .map_err(|_| "the fan-out thread panicked".to_string())??;
            } else {
                fanout::run(args).await?;
            }
        }
        Scenario::CpuPost {
            posts,
            in_flight,
            runs,
            notifier,
            runtime,
        } => {
            let args = if quick {
                cpu_post::Args {
                    posts: 200,
                    in_flight: 8,
                    runs: 1,
                    notifiers: notifier,
                    flavors: runtime,
                }
            } else {
                cpu_post::Args {
                    posts,
                    in_flight,
                    runs,
                    notifiers: notifier,
                    flavors: runtime,
                }
            };
            cpu_post::run(args).await?;
        }
        Scenario::ManagementStub {
            delay_ms,
            throttle_above,
        } => {
            management_stub::serve(Duration::from_millis(delay_ms), throttle_above).await?;
        }
        Scenario::FanoutQueue {
            members,
            workers,
            delay_ms,
            job_deadline_ms,
            margin_ms,
            throttle_above,
            stub,
            only_throttled,
        } => {
            let args = if quick {
                fanout_queue::Args {
                    members: 3_000,
                    workers: vec![1, 4],
                    delay: Duration::from_millis(2),
                    job_deadline: Duration::from_millis(300),
                    margin: Duration::from_millis(100),
                    throttle_above: 2_000,
                    stubs: stub,
                    only_throttled,
                }
            } else {
                fanout_queue::Args {
                    members,
                    workers,
                    delay: Duration::from_millis(delay_ms),
                    job_deadline: Duration::from_millis(job_deadline_ms),
                    margin: Duration::from_millis(margin_ms),
                    throttle_above,
                    stubs: stub,
                    only_throttled,
                }
            };
            fanout_queue::run(args).await?;
        }
        Scenario::ColdStart {
            binary,
            starts,
            event,
            ssl_cert_file,
        } => {
            let starts = if quick { 2 } else { usize::from(starts) };
            cold_start::run(&binary, &event, starts, ssl_cert_file.as_deref()).await?;
        }
        Scenario::Artifacts { dir, binaries } => artifacts::run(&dir, &binaries)?,
        Scenario::GatewayLoad {
            binary,
            clients,
            room_size,
            rate,
            seconds,
            gateway_arg,
        } => {
            let (clients, rate, seconds) = if quick {
                (vec![20], 100, 1)
            } else {
                (clients, rate, seconds)
            };
            let args = |n| gateway_load::Args {
                clients: n,
                room_size,
                rate,
                seconds,
                gateway_args: gateway_arg.clone(),
            };
            let mut rows = Vec::new();
            for &n in &clients {
                rows.push(gateway_load::run(&binary, args(n)).await?);
            }
            gateway_load::print(&rows, &args(0));
        }
        Scenario::Soak {
            binary,
            clients,
            room_size,
            rate,
            minutes,
            every_seconds,
            gateway_arg,
        } => {
            let args = gateway_load::Args {
                clients,
                room_size,
                rate,
                seconds: 0,
                gateway_args: gateway_arg,
            };
            let (minutes, every) = if quick {
                (1, Duration::from_secs(5))
            } else {
                (minutes, Duration::from_secs(every_seconds))
            };
            gateway_load::soak(&binary, args, minutes, every).await?;
        }
        Scenario::Handler {
            room_size,
            messages,
            runs,
        } => {
            let (messages, runs) = if quick { (1_000, 1) } else { (messages, runs) };
            handler::run(messages, room_size, runs).await;
        }
        Scenario::RoomStream {
            dynamodb_endpoint,
            messages,
            runs,
            seconds,
            senders,
            missed,
        } => {
            let args = if quick {
                room_stream::Args {
                    dynamodb_endpoint,
                    messages: 20,
                    runs: 1,
                    seconds: 0.3,
                    senders: 2,
                    missed: 20,
                }
            } else {
                room_stream::Args {
                    dynamodb_endpoint,
                    messages,
                    runs,
                    seconds,
                    senders,
                    missed,
                }
            };
            room_stream::run(args).await?;
        }
        Scenario::RateLimit {
            dynamodb_endpoint,
            messages,
            runs,
        } => {
            let (messages, runs) = if quick { (20, 1) } else { (messages, runs) };
            rate_limit::run(&dynamodb_endpoint, messages, runs).await?;
        }
    }
    Ok(())
}
