//! Real browsers for the end-to-end tests: a chromedriver of the test's own on a free
//! loopback port, driving headless Chromium sessions with throwaway profiles.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long one thing a test waits for in a page may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a wait looks at the page again.
const TICK: Duration = Duration::from_millis(50);

/// Browser tests take turns: two cores cannot run several Chromiums and the app at
/// once without stretching every wait, and a wait that fails only under load is noise.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a test body after the browser tests before it, and fails it after `limit`.
pub async fn bounded(limit: Duration, body: impl Future<Output = ()>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    if tokio::time::timeout(limit, body).await.is_err() {
        panic!("the test took longer than {limit:?}");
    }
}

/// Fails, never skips, when the browser is missing: a skipped browser test would
/// look like a passing one.
fn require_tools() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver)"
        );
    }
}

/// A chromedriver process serving one test; it and every browser it started are
/// killed when it is dropped, so a failed test leaves no Chromium behind.
pub struct Driver {
    child: Child,
    pub url: String,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until it is ready. A port
    /// taken between choosing and binding it makes chromedriver exit; then another is
    /// tried.
    pub async fn start() -> Driver {
        require_tools();
        let mut failures = Vec::new();
        for _ in 0..3 {
            let mut driver = Driver::spawn();
            match driver.ready().await {
                Ok(()) => return driver,
                Err(why) => failures.push(why),
            }
        }
        panic!("chromedriver did not start: {failures:#?}");
    }

    fn spawn() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let logs = tempfile::tempdir().expect("temp dir");
        let log = logs.path().join("chromedriver.log");
        let out = std::fs::File::create(&log).expect("chromedriver log");
        let err = out.try_clone().expect("chromedriver log");

        // Its own process group, so that dropping the driver can end the browsers it
        // started along with it.
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _logs: logs,
        }
    }

    async fn ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let status = format!("{}/status", self.url);
        let deadline = tokio::time::Instant::now() + WAIT;

        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("chromedriver exited with {exit}: {log}"));
            }
            let answer = http
                .get(&status)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(answer) = answer {
                let body: Value = answer.json().await.unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver at {status} did not answer in {WAIT:?}"
                ));
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// A new headless Chromium with an empty profile of its own: no cookies, storage
    /// or cache shared with any other session.
    pub async fn browser(&self) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--window-size=1280,900",
        ]
        .map(str::to_owned);
        let mut args = args.to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));

        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await;
        let client = connect.unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("starting a Chromium session: {e}\nchromedriver log:\n{log}")
        });
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the driver's pid, which stays ours until it is reaped below.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session, the way a person at one computer would use the app.
pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
}

/// Whether a script's answer means "ready": anything but `null`, `false` or nothing.
fn is_ready(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// Runs `script` (a function body; `return` gives the answer) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Runs `script` until it answers something ready (see [`is_ready`]) and returns
    /// that answer. A script that fails counts as not ready yet: during a navigation the
    /// page it runs in may be going away.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = match self.client.execute(script, Vec::new()).await {
                Ok(value) if is_ready(&value) => return value,
                Ok(value) => value.to_string(),
                Err(error) => error.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                let flash = self.flash().await;
                panic!(
                    "timed out after {WAIT:?} waiting for {what} (last: {last}; flash: {flash:?})"
                );
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// The page's flash message, which tells what went wrong in a live region.
    async fn flash(&self) -> String {
        let script = "return document.getElementById('flash')?.textContent ?? ''";
        match self.client.execute(script, Vec::new()).await {
            Ok(Value::String(text)) => text,
            _ => String::new(),
        }
    }

    /// Waits for an element, then clicks it as a person would.
    pub async fn click(&self, css: &str) {
        self.wait_for(&format!("{css} to appear"), &exists(css))
            .await;
        let element = self.client.find(Locator::Css(css)).await;
        let element = element.unwrap_or_else(|e| panic!("finding {css}: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Waits for a field, then types `text` into it key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.wait_for(&format!("{css} to appear"), &exists(css))
            .await;
        let element = self.client.find(Locator::Css(css)).await;
        let element = element.unwrap_or_else(|e| panic!("finding {css}: {e}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    /// Saves a picture of the window as PNG, creating the folder.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// Ends the session, which closes the browser and its windows.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// A script that answers whether an element matches `css`.
pub fn exists(css: &str) -> String {
    format!("return document.querySelector({}) !== null", json!(css))
}

/// Where pictures for people to look at go: `target/browser/`.
pub fn picture_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("browser")
}
