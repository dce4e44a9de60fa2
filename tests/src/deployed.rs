//! The local gateway in front of the real Lambda binaries (`--deployment`), on moto: a stack of
//! its own per test (table, queues), a deployment file that runs `target/debug/{connect,
//! authorizer, default, disconnect, fanout}` with the environment the template gives them, and
//! what the functions did. `./scripts/test` builds those binaries before any test runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use local_gateway::{Options, RunningGateway, start};
use serde_json::{Value, json};

use crate::sqs::{StackQueues, sqs_client, sqs_endpoint};

/// The HS256 secret the stack's authorizer checks tokens with.
pub const JWT_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
/// The template's queues redrive after 3 receives.
pub const MAX_RECEIVES: u32 = 3;

/// A Lambda binary the workspace build left beside the test binaries.
pub fn lambda_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let binary = dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build the Lambdas first (cargo build --workspace; ./scripts/test does)",
        binary.display()
    );
    binary
}

/// What a test changes in the stack it deploys.
#[derive(Clone)]
pub struct Variant {
    /// Route key -> function; the template's three by default.
    pub routes: BTreeMap<String, Option<String>>,
    pub identity_source: Vec<String>,
    /// A broadcast past this many recipients goes through the internal queue.
    pub inline_recipients: u32,
    /// The DynamoDB endpoint `fanout` is given (a closed port makes every job fail).
    pub fanout_dynamodb: Option<String>,
}

impl Default for Variant {
    fn default() -> Self {
        Self {
            routes: [
                ("$connect", "connect"),
                ("$default", "default"),
                ("$disconnect", "disconnect"),
            ]
            .into_iter()
            .map(|(key, function)| (key.to_owned(), Some(function.to_owned())))
            .collect(),
            identity_source: vec!["route.request.querystring.token".into()],
            inline_recipients: 50,
            fanout_dynamodb: None,
        }
    }
}

pub struct DeployedStack {
    pub gateway: RunningGateway,
    pub queues: StackQueues,
    pub table: String,
    file: PathBuf,
    logs: PathBuf,
}

impl Drop for DeployedStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

impl DeployedStack {
    pub async fn deploy(variant: Variant) -> Self {
        let client = sqs_client().await;
        let table = crate::unique_table("deployed");
        let queues = StackQueues::fresh(&client, "deployed", MAX_RECEIVES).await;
        let port = free_port();
        let stage = "ci";
        let dir = std::env::temp_dir().join(format!("deployed-{table}"));
        let logs = dir.join("logs");
        let file = dir.join("deployment.json");
        let dynamodb = crate::dynamodb_endpoint();
        let common = json!({
            "CONNECTIONS_TABLE": table,
            "MANAGEMENT_ENDPOINT": format!("http://127.0.0.1:{port}/{stage}"),
            "METRICS_NAMESPACE": "deployed-test",
            "RUST_LOG": "info",
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
            "AWS_ENDPOINT_URL_SQS": sqs_endpoint(),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        });
        let with = |extra: Value| {
            let mut environment = common.clone();
            for (name, value) in extra.as_object().into_iter().flatten() {
                environment[name] = value.clone();
            }
            environment
        };
        let function = |name: &str, timeout: u64, environment: Value| {
            json!({
                "bootstrap": lambda_binary(name),
                "environment": environment,
                "timeoutSeconds": timeout,
                "memoryMb": 128,
                "reservedConcurrency": null,
                "logFile": logs.join(format!("{name}.log")),
            })
        };
        let mut fanout_environment = with(json!({
            "INTERNAL_QUEUE_URL": queues.internal,
            "DEAD_LETTER_QUEUE_URL": queues.dead_letters,
            "FUNCTION_TIMEOUT_SECONDS": "10",
        }));
        if let Some(endpoint) = &variant.fanout_dynamodb {
            fanout_environment["AWS_ENDPOINT_URL_DYNAMODB"] = json!(endpoint);
        }
        let mapping = |queue: &str| {
            json!({
                "function": "fanout", "queueUrl": queue, "batchSize": 10,
                "maximumConcurrency": 2, "reportBatchItemFailures": true,
                "sqsEndpoint": sqs_endpoint(), "accessKeyId": "test", "secretAccessKey": "test",
            })
        };
        let deployment = json!({
            "stage": stage,
            "apiId": "deployedtest",
            "region": "us-east-1",
            "accountId": "123456789012",
            "routeSelectionExpression": "$request.body.action",
            "routes": variant.routes,
            "authorizer": {"function": "authorizer", "identitySource": variant.identity_source},
            "functions": {
                "connect": function("connect", 29, with(json!({"REQUIRE_PRINCIPAL": "true"}))),
                "authorizer": function("authorizer", 29, with(json!({"JWT_SECRET": JWT_SECRET}))),
                "default": function("default", 29, with(json!({
                    "INTERNAL_QUEUE_URL": queues.internal,
                    "FUNCTION_TIMEOUT_SECONDS": "29",
                    "INLINE_RECIPIENTS": variant.inline_recipients.to_string(),
                }))),
                "disconnect": function("disconnect", 29, common.clone()),
                "fanout": function("fanout", 10, fanout_environment),
            },
            "eventSourceMappings": [mapping(&queues.backend), mapping(&queues.internal)],
        });
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        std::fs::write(&file, deployment.to_string()).expect("the deployment file");
        let dynamo = crate::dynamodb_client().await;
        adapters::dynamodb::create_table_if_missing(&dynamo, &table)
            .await
            .expect("moto creates the table");
        let port = port.to_string();
        let path = file.display().to_string();
        let args = ["local-gateway", "--port", &port, "--deployment", &path];
        let options = Options::try_parse_from(args).expect("valid flags");
        let gateway = start(options.gateway_config().await.expect("the deployment runs"))
            .await
            .expect("gateway start");
        Self {
            gateway,
            queues,
            table,
            file,
            logs,
        }
    }

    /// A token the stack's authorizer accepts, for `subject`.
    pub fn token(subject: &str) -> String {
        let options =
            Options::try_parse_from(["local-gateway", "--jwt-secret", JWT_SECRET]).expect("flags");
        options.minted_token(subject).expect("a token")
    }

    /// A token signed with the stack's secret that expired an hour ago.
    pub fn expired_token(subject: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs();
        let claims = json!({"sub": subject, "iat": now - 7200, "exp": now - 3600});
        let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("a token")
    }

    /// (invocations, cold starts) of `function` so far.
    pub fn invocations(&self, function: &str) -> (u64, u64) {
        let stats = self
            .gateway
            .functions()
            .expect("a deployed gateway has functions")
            .stats();
        let stats = &stats[function];
        (stats.invocations, stats.cold_starts)
    }

    /// What `function` printed so far.
    pub fn log(&self, function: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{function}.log"))).unwrap_or_default()
    }
}

/// A port nothing listens on now (bound, then released): the gateway's, written into the
/// functions' MANAGEMENT_ENDPOINT before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
