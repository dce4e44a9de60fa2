//! Headless Chromium for the real-browser tests, driven over the DevTools protocol
//! ([`crate::cdp`]). The browser is Debian's `chromium` (`./scripts/test` installs it); a missing
//! browser fails the test with a message saying so, never skips it. Every wait is bounded, and
//! the browser process and its profile directory go away with the [`Chromium`] value.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::cdp::Connection;

/// How long any one thing the browser does may take (start, load, a message to appear).
pub const BROWSER_WAIT: Duration = Duration::from_secs(20);
/// One browser at a time: two cores shared by parallel test binaries make several slow enough
/// to time out.
static ONE_BROWSER: Semaphore = Semaphore::const_new(1);

/// A headless Chromium on a free DevTools port, killed (and its profile deleted) on drop.
pub struct Chromium {
    cdp: Arc<Connection>,
    _process: Process,
    _turn: SemaphorePermit<'static>,
}

/// The browser process and its profile directory, both gone on drop, even if the start fails.
struct Process {
    child: std::process::Child,
    profile: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        // Waited for (a killed process exits at once): until it has, it still writes into the
        // profile, and the directory would come back half-deleted.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser binary: `$CHROMIUM`, else the first of Debian's and others' names on `PATH`.
pub fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no Chromium found (tried {names:?} on PATH and $CHROMIUM). ./scripts/test installs \
                 it; by hand: apt-get install chromium"
            )
        })
}

impl Chromium {
    pub async fn launch() -> Chromium {
        let turn = ONE_BROWSER
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let profile = fresh_profile_dir();
        let process = std::process::Command::new(chromium_binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                // Port 0: Chromium takes a free port and writes it to DevToolsActivePort.
                "--remote-debugging-port=0",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--window-size=1440,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Chromium did not start");
        let mut process = Process {
            child: process,
            profile,
        };
        let ws_url = process.devtools_url().await;
        let cdp = Connection::connect(&ws_url, BROWSER_WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Chromium {
            cdp: Arc::new(cdp),
            _process: process,
            _turn: turn,
        }
    }

    /// A new tab at `url`, loaded, with a 1440 x 900 viewport.
    pub async fn open(&self, url: &str) -> Page {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .unwrap_or_else(|e| panic!("a new tab: {e}"))["targetId"]
            .clone();
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await
            .unwrap_or_else(|e| panic!("attaching to the new tab: {e}"));
        let page = Page {
            cdp: self.cdp.clone(),
            session: attached["sessionId"]
                .as_str()
                .expect("attachToTarget answers a sessionId")
                .to_string(),
        };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        let navigated = page.call("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = navigated.get("errorText") {
            panic!("{url} did not load: {error}");
        }
        wait_until(
            &page,
            "location.href !== 'about:blank' && document.readyState === 'complete'",
            "the page loads",
        )
        .await;
        page
    }
}

/// A tab, reached through its DevTools session.
pub struct Page {
    cdp: Arc<Connection>,
    session: String,
}

impl Page {
    /// A command for this tab; the test fails with the browser's answer if it refuses.
    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp
            .call(Some(&self.session), method, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Process {
    /// Waits for Chromium to write its DevTools port and browser path into the profile.
    async fn devtools_url(&mut self) -> String {
        let file = self.profile.join("DevToolsActivePort");
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Chromium exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "Chromium wrote no DevToolsActivePort within {BROWSER_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn fresh_profile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "browser-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a profile directory");
    dir
}

/// Runs `script` in the page (awaiting it if it is a promise) and returns its value as JSON
/// (`null` for `undefined`). A script that throws fails the test with the exception.
pub async fn eval(page: &Page, script: &str) -> Value {
    let answer = page
        .call(
            "Runtime.evaluate",
            json!({ "expression": script, "returnByValue": true, "awaitPromise": true }),
        )
        .await;
    if let Some(exception) = answer.get("exceptionDetails") {
        panic!("script failed: {script}: {exception}");
    }
    answer["result"]
        .get("value")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `condition` (a JavaScript expression) is true in the page. On a timeout it saves
/// a screenshot named after `what` and fails the test.
pub async fn wait_until(page: &Page, condition: &str, what: &str) {
    let deadline = Instant::now() + BROWSER_WAIT;
    let script =
        format!("(() => {{ try {{ return !!({condition}); }} catch {{ return false; }} }})()");
    while eval(page, &script).await != Value::Bool(true) {
        if Instant::now() >= deadline {
            let shot = screenshot(page, &format!("timeout-{}", slug(what))).await;
            panic!(
                "{what}: not true within {BROWSER_WAIT:?} ({condition}); see {}",
                shot.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `text` into the input `selector` (replacing its value) and presses Enter, which submits
/// the input's form as a person's key press does.
pub async fn type_and_enter(page: &Page, selector: &str, text: &str) {
    // Input goes to the tab in front; a background tab's events wait for a frame that a hidden
    // headless tab never draws.
    page.call("Page.bringToFront", json!({})).await;
    let focus = format!(
        "(() => {{ const input = document.querySelector({selector:?}); input.value = ''; input.focus(); \
         return document.activeElement === input; }})()"
    );
    assert_eq!(
        eval(page, &focus).await,
        Value::Bool(true),
        "{selector} takes the focus"
    );
    page.call("Input.insertText", json!({ "text": text })).await;
    let enter = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
    let mut down = enter.clone();
    down["type"] = json!("keyDown");
    down["text"] = json!("\r");
    page.call("Input.dispatchKeyEvent", down).await;
    let mut up = enter;
    up["type"] = json!("keyUp");
    page.call("Input.dispatchKeyEvent", up).await;
}

/// Saves the whole page as `target/browser-screenshots/{name}.png` and returns the path.
pub async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let path = dir.join(format!("{name}.png"));
    // A hidden headless tab draws no frame, and a screenshot waits for one: in front first.
    page.call("Page.bringToFront", json!({})).await;
    let metrics = page.call("Page.getLayoutMetrics", json!({})).await;
    let size = &metrics["cssContentSize"];
    let shot = page
        .call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": { "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1 },
            }),
        )
        .await;
    let png = BASE64
        .decode(
            shot["data"]
                .as_str()
                .expect("captureScreenshot answers data"),
        )
        .expect("the screenshot is base64");
    std::fs::write(&path, png).expect("writing the screenshot");
    path
}

/// The workspace's `target/browser-screenshots`, wherever `CARGO_TARGET_DIR` points.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("browser-screenshots")
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
