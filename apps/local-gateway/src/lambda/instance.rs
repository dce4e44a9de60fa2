//! One instance of a function: its `bootstrap` process and the Runtime API it polls.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::function::{FunctionSpec, InvokeError};

/// Lambda's limit on a function's init phase.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines kept to say why an instance failed.
const TAIL_LINES: usize = 20;

/// What the handler answered: its response, or its error's type and message.
type Answer = Result<Value, (String, String)>;

struct Pending {
    request_id: String,
    event: Value,
    deadline_ms: u64,
    answer: oneshot::Sender<Answer>,
}

/// What the Runtime API's handlers share.
struct Api {
    function: String,
    arn: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    answers: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    /// Told once the instance asked for its first event: its init is done.
    ready: Notify,
    init_error: Mutex<Option<String>>,
    /// Told when the function reports an init error: Lambda ends such an instance at once.
    init_failed: Notify,
}

/// One instance of a function: its process, and the Runtime API only it polls. Dropping it kills
/// the process.
pub struct Instance {
    function: String,
    pid: Option<u32>,
    invocations: mpsc::Sender<Pending>,
    /// Dropped with the instance, which kills the process.
    _kill: oneshot::Sender<()>,
    /// Set when the process exits.
    exited: watch::Receiver<Option<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    api: tokio::task::JoinHandle<()>,
    init_time: Duration,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.api.abort();
    }
}

impl Instance {
    /// Starts the process and waits for its first `next`, as Lambda's init phase.
    pub async fn start(spec: &FunctionSpec) -> Result<Self, InvokeError> {
        let init_failed_with = |message: String| InvokeError::InitFailed {
            function: spec.name.clone(),
            message,
        };
        let (invocations, queue) = mpsc::channel(1);
        let api = Arc::new(Api {
            function: spec.name.clone(),
            arn: format!(
                "arn:aws:lambda:{}:000000000000:function:{}",
                spec.environment
                    .get("AWS_REGION")
                    .map_or("us-east-1", String::as_str),
                spec.name
            ),
            queue: tokio::sync::Mutex::new(queue),
            answers: Mutex::default(),
            ready: Notify::new(),
            init_error: Mutex::default(),
            init_failed: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| init_failed_with(format!("no port for its Runtime API: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| init_failed_with(e.to_string()))?;
        let routes = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, routes).await;
        });
        let ready = api.ready.notified();
        let init_failed = api.init_failed.notified();
        let started = Instant::now();
        let mut process = spawn(spec, &address.to_string()).map_err(|e| {
            init_failed_with(format!("cannot run {}: {e}", spec.bootstrap.display()))
        })?;
        let pid = process.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let log = log_writer(spec).await;
        for stream in [
            process.stdout.take().map(BufReader::new).map(Either::Out),
            process.stderr.take().map(BufReader::new).map(Either::Err),
        ]
        .into_iter()
        .flatten()
        {
            tokio::spawn(copy_lines(stream, log.clone(), tail.clone()));
        }
        let (exit_tx, exited) = watch::channel(None);
        let (kill, killed) = oneshot::channel();
        tokio::spawn(supervise(process, killed, exit_tx));
        let mut instance = Self {
            function: spec.name.clone(),
            pid,
            invocations,
            _kill: kill,
            exited,
            tail,
            api: server,
            init_time: Duration::ZERO,
        };
        let mut exited = instance.exited.clone();
        tokio::select! {
            () = ready => {}
            () = init_failed => {
                let why = api.init_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(init_failed_with(why.unwrap_or_default()));
            }
            _ = exited.changed() => {
                let why = api.init_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(init_failed_with(why.unwrap_or_else(|| instance.why_it_stopped())));
            }
            () = tokio::time::sleep(INIT_TIMEOUT) => {
                return Err(init_failed_with(format!("it did not ask for an event within {INIT_TIMEOUT:?}")));
            }
        }
        instance.init_time = started.elapsed();
        Ok(instance)
    }

    /// From spawning the process to its first `next`: its init phase.
    pub fn init_time(&self) -> Duration {
        self.init_time
    }

    /// The process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// One invocation: the event handed to the next `next`, the answer awaited until the
    /// timeout.
    pub async fn invoke(
        &mut self,
        request_id: &str,
        event: &Value,
        timeout: Duration,
    ) -> Result<Value, InvokeError> {
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(timeout)
            .as_millis() as u64;
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.to_owned(),
            event: event.clone(),
            deadline_ms,
            answer,
        };
        let crashed = |message: String| InvokeError::Crashed {
            function: self.function.clone(),
            message,
        };
        if self.invocations.send(pending).await.is_err() {
            return Err(crashed("its Runtime API is gone".into()));
        }
        let mut exited = self.exited.clone();
        tokio::select! {
            answer = answered => match answer {
                Ok(Ok(value)) => Ok(value),
                Ok(Err((error_type, message))) => Err(InvokeError::Failed {
                    function: self.function.clone(),
                    error_type,
                    message,
                }),
                Err(_) => Err(crashed(self.why_it_stopped())),
            },
            _ = exited.changed() => Err(crashed(self.why_it_stopped())),
            // The pool drops a timed-out instance, which kills it, as Lambda does.
            () = tokio::time::sleep(timeout) => {
                Err(InvokeError::TimedOut { function: self.function.clone(), timeout })
            }
        }
    }

    /// The process's last words: its exit status and the last log line with an error in it.
    fn why_it_stopped(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let status = self
            .exited
            .borrow()
            .clone()
            .unwrap_or_else(|| "still running".into());
        let last_error = tail
            .iter()
            .rev()
            .find_map(|line| error_of(line))
            .or_else(|| tail.back().cloned())
            .unwrap_or_default();
        format!("{last_error} ({status})")
    }
}

/// The error a log line reports: a JSON line's `error` field (the functions log a start-up
/// failure that way), or the line itself if it says "error".
fn error_of(line: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<Value>(line) {
        let fields = json.get("fields").unwrap_or(&json);
        return fields["error"].as_str().map(str::to_owned);
    }
    line.to_ascii_lowercase()
        .contains("error")
        .then(|| line.to_owned())
}

enum Either<A, B> {
    Out(A),
    Err(B),
}

fn spawn(spec: &FunctionSpec, runtime_api: &str) -> std::io::Result<tokio::process::Child> {
    let task_root = spec
        .bootstrap
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    // Absolute: a relative path would be read from the task root the child starts in.
    let bootstrap = std::path::absolute(&spec.bootstrap).unwrap_or_else(|_| spec.bootstrap.clone());
    let mut command = tokio::process::Command::new(&bootstrap);
    command
        .env_clear()
        .envs(&spec.environment)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("_HANDLER", "bootstrap")
        .env("LAMBDA_TASK_ROOT", &task_root)
        .current_dir(&task_root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command.spawn()
}

type LogFile = Option<Arc<tokio::sync::Mutex<tokio::fs::File>>>;

async fn log_writer(spec: &FunctionSpec) -> LogFile {
    let path = spec.log_file.as_ref()?;
    if let Some(dir) = path.parent() {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .ok()?;
    Some(Arc::new(tokio::sync::Mutex::new(file)))
}

async fn copy_lines<A, B>(stream: Either<A, B>, log: LogFile, tail: Arc<Mutex<VecDeque<String>>>)
where
    A: tokio::io::AsyncBufRead + Unpin,
    B: tokio::io::AsyncBufRead + Unpin,
{
    async fn each<R: tokio::io::AsyncBufRead + Unpin>(
        reader: R,
        log: LogFile,
        tail: Arc<Mutex<VecDeque<String>>>,
    ) {
        let mut lines = reader.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(file) = &log {
                let mut file = file.lock().await;
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
            }
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    match stream {
        Either::Out(reader) => each(reader, log, tail).await,
        Either::Err(reader) => each(reader, log, tail).await,
    }
}

/// Owns the process: tells `exit` how it ended, and kills it when `killed` fires or its sender
/// (the instance) is dropped.
async fn supervise(
    mut process: tokio::process::Child,
    killed: oneshot::Receiver<()>,
    exit: watch::Sender<Option<String>>,
) {
    let status = tokio::select! {
        status = process.wait() => status,
        _ = killed => {
            let _ = process.start_kill();
            process.wait().await
        }
    };
    let described = match status {
        Ok(status) => format!("exit status {status}"),
        Err(e) => format!("lost: {e}"),
    };
    let _ = exit.send(Some(described));
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    api.ready.notify_one();
    let mut queue = api.queue.lock().await;
    let Some(pending) = queue.recv().await else {
        return StatusCode::GONE.into_response();
    };
    drop(queue);
    api.answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pending.request_id.clone(), pending.answer);
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    header("lambda-runtime-aws-request-id", pending.request_id);
    header(
        "lambda-runtime-deadline-ms",
        pending.deadline_ms.to_string(),
    );
    header("lambda-runtime-invoked-function-arn", api.arn.clone());
    header(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    header("content-type", "application/json".into());
    (headers, pending.event.to_string()).into_response()
}

fn settle(api: &Api, id: &str, answer: Answer) -> StatusCode {
    let waiting = api
        .answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
    match waiting {
        Some(waiting) => {
            let _ = waiting.send(answer);
            StatusCode::ACCEPTED
        }
        None => {
            tracing::warn!(
                function = api.function,
                requestId = id,
                "an answer to no pending invocation"
            );
            StatusCode::BAD_REQUEST
        }
    }
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    settle(&api, &id, Ok(value))
}

/// The error as the runtime reports it: `{"errorType": ..., "errorMessage": ...}`.
fn reported(body: &[u8]) -> (String, String) {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        json["errorType"].as_str().unwrap_or("Unknown").to_owned(),
        json["errorMessage"]
            .as_str()
            .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned),
    )
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    settle(&api, &id, Err(reported(&body)))
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    let (error_type, message) = reported(&body);
    *api.init_error.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(format!("{error_type}: {message}"));
    api.init_failed.notify_one();
    StatusCode::ACCEPTED
}
