//! Headless Chromium for the real-browser tests, driven over the DevTools protocol with
//! chromiumoxide. The browser is Debian's `chromium` (`./scripts/test` installs it); a missing
//! browser fails the test with a message saying so, never skips it. Every wait is bounded, and
//! the browser process and its profile directory go away with the [`Chromium`] value.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

/// How long any one thing the browser does may take (start, load, a message to appear).
pub const BROWSER_WAIT: Duration = Duration::from_secs(20);
/// One browser at a time: two cores shared by parallel test binaries make several slow enough
/// to time out.
static ONE_BROWSER: Semaphore = Semaphore::const_new(1);

/// A headless Chromium on a free DevTools port, killed (and its profile deleted) on drop.
pub struct Chromium {
    browser: Browser,
    handler: JoinHandle<()>,
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
        let config = HandlerConfig {
            viewport: Some(Viewport {
                width: 1440,
                height: 900,
                ..Viewport::default()
            }),
            request_timeout: BROWSER_WAIT,
            ..HandlerConfig::default()
        };
        let (browser, mut events) =
            tokio::time::timeout(BROWSER_WAIT, Browser::connect_with_config(ws_url, config))
                .await
                .expect("DevTools did not answer in time")
                .expect("DevTools connection");
        // The handler must be polled for any command to complete; it ends with the browser.
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chromium {
            browser,
            handler,
            _process: process,
            _turn: turn,
        }
    }

    /// A new tab at `url`, loaded.
    pub async fn open(&self, url: &str) -> Page {
        tokio::time::timeout(BROWSER_WAIT, self.browser.new_page(url))
            .await
            .expect("the page did not load in time")
            .expect("new page")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.handler.abort();
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

/// Runs `script` in the page and returns its value as JSON (`null` for `undefined`).
pub async fn eval(page: &Page, script: &str) -> Value {
    let result = tokio::time::timeout(BROWSER_WAIT, page.evaluate(script))
        .await
        .unwrap_or_else(|_| panic!("the page did not answer in time: {script}"))
        .unwrap_or_else(|e| panic!("script failed: {script}: {e}"));
    result.into_value().unwrap_or(Value::Null)
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

/// Types `text` into the input `selector` (replacing its value) and presses Enter.
pub async fn type_and_enter(page: &Page, selector: &str, text: &str) {
    let clear = format!("document.querySelector({selector:?}).value = ''");
    eval(page, &clear).await;
    let typed = async {
        // Input goes to the tab in front; a background tab's events wait for a frame that a
        // hidden headless tab never draws.
        page.bring_to_front().await?;
        page.find_element(selector)
            .await?
            .click()
            .await?
            .type_str(text)
            .await?
            .press_key("Enter")
            .await?;
        Ok::<(), chromiumoxide::error::CdpError>(())
    };
    tokio::time::timeout(BROWSER_WAIT, typed)
        .await
        .expect("typing did not finish in time")
        .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
}

/// Saves the whole page as `target/browser-screenshots/{name}.png` and returns the path.
pub async fn screenshot(page: &Page, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    let path = dir.join(format!("{name}.png"));
    let params = ScreenshotParams::builder().full_page(true).build();
    tokio::time::timeout(BROWSER_WAIT, page.save_screenshot(params, &path))
        .await
        .expect("the screenshot did not finish in time")
        .expect("screenshot");
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
