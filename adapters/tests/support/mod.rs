//! Shared by the adapters' test binaries: each includes it with `mod support;`.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

thread_local! {
    /// Where this thread's log lines go while a capture is on.
    static CAPTURE: RefCell<Option<CapturedLogs>> = const { RefCell::new(None) };
}

/// Everything logged on this thread while the guard lives, as JSON lines.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

/// Ends the capture when dropped.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

impl CapturedLogs {
    /// Starts capturing every level on the current thread (a `#[tokio::test]` runs on one).
    ///
    /// One global subscriber routes each line to its thread's capture, rather than a subscriber
    /// per test set with `set_default`: tracing caches per callsite whether anyone listens, and a
    /// test thread registering a callsite while another adds its subscriber can cache "nobody",
    /// so a capturing test saw no line at all now and then.
    pub fn start() -> (Self, CaptureGuard) {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(|| ThreadCapture)
                .try_init();
        });
        let captured = Self::default();
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(captured.clone()));
        (captured, CaptureGuard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Writes to the current thread's capture, if any; other threads' lines are dropped.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(captured) = capture.borrow().as_ref() {
                captured
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
