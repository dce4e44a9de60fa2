//! Sleeps accurate to about a tenth of a millisecond, for the `@connections` stub's "D ms per
//! post". tokio's timer has a 1 ms tick and rounds every sleep up to a tick, so a 20 ms sleep
//! took 20-21 ms, and with the wake-up the stub answered after 21.7 ms on average (measured at
//! concurrency 1): the fan-out's efficiency, which divides by D, counted those 8 % against the
//! client. One thread keeps the deadlines in a heap and sleeps on a channel until the next.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Wake = (Instant, oneshot::Sender<()>);

/// Resolves `delay` after the call, give or take the OS's timer slack (tens of microseconds).
pub async fn sleep(delay: Duration) {
    static TIMER: OnceLock<mpsc::Sender<Wake>> = OnceLock::new();
    let timer = TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || run(rx));
        tx
    });
    let (wake, woken) = oneshot::channel();
    if timer.send((Instant::now() + delay, wake)).is_ok() {
        let _ = woken.await;
    }
}

fn run(requests: mpsc::Receiver<Wake>) {
    let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut wakes: std::collections::HashMap<u64, oneshot::Sender<()>> = Default::default();
    let mut next_id = 0u64;
    loop {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(wake) = wakes.remove(&id) {
                let _ = wake.send(());
            }
        }
        let request = match due.peek() {
            None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(Reverse((at, _))) => requests.recv_timeout(at.saturating_duration_since(now)),
        };
        match request {
            Ok((at, wake)) => {
                due.push(Reverse((at, next_id)));
                wakes.insert(next_id, wake);
                next_id += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_end_in_deadline_order_and_not_before_their_delay() {
        let started = Instant::now();
        let (short, long) = tokio::join!(
            async {
                sleep(Duration::from_millis(5)).await;
                started.elapsed()
            },
            async {
                sleep(Duration::from_millis(15)).await;
                started.elapsed()
            }
        );

        assert!(short >= Duration::from_millis(5), "{short:?}");
        assert!(long >= Duration::from_millis(15), "{long:?}");
        assert!(short < long);
    }
}
