//! Lambda, on a laptop: each function's real `bootstrap`, one process per concurrent instance,
//! each instance with a Lambda Runtime API of its own (`/2018-06-01/runtime/invocation/next`,
//! `/<id>/response`, `/<id>/error`, `/init/error`), the function's environment, timeout, memory
//! size and reserved concurrency, and the deadline header. The rehearsal (`scripts/rehearse`)
//! runs the packaged stack's binaries through it, and `bench cold-start` measures their start.
//!
//! What it does as Lambda does: an instance starts on first need (a cold start) and is reused
//! while warm; at most `reserved_concurrency` run at once (10 when unset: a laptop is not an
//! account), the others wait; an invocation past its timeout gets its instance killed and fails;
//! a process that exits before asking for its first event failed its init, and its last log line
//! says why (the functions log a start-up failure as JSON before exiting).
//! What it does not: freeze idle instances, recycle them after hours, bill, or run the binary for
//! another architecture (x86_64 only here).

mod function;
mod instance;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

pub use function::{FunctionSpec, InvokeError};
pub use instance::Instance;

/// Instances of one function at once when it has no reserved concurrency.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// What a function's instances did: for the rehearsal's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionStats {
    pub invocations: u64,
    pub cold_starts: u64,
    /// Each cold start's time from spawning the process to its first `next`.
    pub init_times: Vec<Duration>,
}

impl std::fmt::Display for FunctionStats {
    /// `12 invocations, 2 cold starts (init 9.1 ms median, 11.0 ms max)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} invocations, {} cold starts",
            self.invocations, self.cold_starts
        )?;
        let mut init = self.init_times.clone();
        init.sort();
        if let (Some(median), Some(max)) = (init.get(init.len() / 2), init.last()) {
            let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
            write!(
                f,
                " (init {:.1} ms median, {:.1} ms max)",
                ms(median),
                ms(max)
            )?;
        }
        Ok(())
    }
}

/// Every function of a deployment, each with its pool of instances.
#[derive(Clone)]
pub struct Functions {
    pools: Arc<BTreeMap<String, Pool>>,
}

struct Pool {
    spec: FunctionSpec,
    permits: Semaphore,
    idle: Mutex<Vec<Instance>>,
    invocations: AtomicU64,
    stats: Mutex<FunctionStats>,
}

impl Functions {
    pub fn new(specs: impl IntoIterator<Item = FunctionSpec>) -> Self {
        let pools = specs
            .into_iter()
            .map(|spec| {
                let permits = spec
                    .reserved_concurrency
                    .unwrap_or(DEFAULT_CONCURRENCY)
                    .max(1);
                let pool = Pool {
                    permits: Semaphore::new(permits),
                    idle: Mutex::default(),
                    invocations: AtomicU64::new(0),
                    stats: Mutex::default(),
                    spec,
                };
                (pool.spec.name.clone(), pool)
            })
            .collect();
        Self {
            pools: Arc::new(pools),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// Invokes `function` with `event`, as Lambda would: its answer, or why there is none.
    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Value, InvokeError> {
        let pool = self
            .pools
            .get(function)
            .ok_or_else(|| InvokeError::UnknownFunction(function.to_owned()))?;
        // A semaphore is never closed here: an error would mean it was.
        let _permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| InvokeError::UnknownFunction(function.to_owned()))?;
        let reused = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut instance = match reused {
            Some(instance) => instance,
            None => {
                let instance = Instance::start(&pool.spec).await?;
                let mut stats = pool.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.cold_starts += 1;
                stats.init_times.push(instance.init_time());
                instance
            }
        };
        let number = pool.invocations.fetch_add(1, Ordering::Relaxed) + 1;
        pool.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .invocations += 1;
        let request_id = format!("{function}-{number}");
        let answer = instance.invoke(&request_id, event, pool.spec.timeout).await;
        // A timed-out or crashed instance is gone, as Lambda discards it; a function error
        // leaves it warm.
        if !matches!(
            answer,
            Err(InvokeError::TimedOut { .. } | InvokeError::Crashed { .. })
        ) {
            pool.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(instance);
        }
        answer
    }

    /// What each function's instances did so far.
    pub fn stats(&self) -> BTreeMap<String, FunctionStats> {
        self.pools
            .iter()
            .map(|(name, pool)| {
                let stats = pool.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (name.clone(), stats)
            })
            .collect()
    }
}
