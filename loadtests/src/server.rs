//! The app under test: started here on a free loopback port with a throw-away SQLite
//! database, or an address given by the user, which must be on this machine.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A server this run started; stopped when dropped.
pub struct Spawned {
    pub base: String,
    pub pid: u32,
    child: Child,
    _dir: TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` (it serves by default) with no Mastodon ingest (the feed driver is the only source),
/// polls every `poll_ms`, and waits until it answers `/healthz`.
pub async fn spawn(binary: &Path, poll_ms: u64, log: &Path) -> anyhow::Result<Spawned> {
    let dir = TempDir::new()?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log_file = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
    let child = Command::new(binary)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--database-url",
            &format!("sqlite://{}", dir.0.join("runfeed.db").display()),
        ])
        .args(["--no-ingest", "--poll-ms", &poll_ms.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id();
    let server = Spawned {
        base,
        pid,
        child,
        _dir: dir,
    };
    wait_healthy(&server.base, Duration::from_secs(30)).await?;
    Ok(server)
}

/// Waits for `/healthz` to answer 200.
pub async fn wait_healthy(base: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = client.get(format!("{base}/healthz")).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{base} did not become healthy within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refuses any host that is not this machine: load goes to loopback only.
pub fn check_loopback(base: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(base).with_context(|| format!("--host {base}"))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--host {base}: load tests only target this machine (127.0.0.0/8, ::1)");
    }
    Ok(())
}

/// The app binary built beside this one (`target/release/switchyard`).
pub fn default_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name("switchyard")
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let path = std::env::temp_dir().join(format!("runfeed-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One counter or gauge of the app's `/metrics`, summed over the lines whose labels
/// contain every `label` given (e.g. `transport="poll"`).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(key, _)| {
            let bare = key.split('{').next().unwrap_or(key);
            bare == name && labels.iter().all(|label| key.contains(label))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_targets() {
        let hosts = [
            ("http://127.0.0.1:8000", true),
            ("http://127.9.0.3", true),
            ("http://localhost:1", true),
            ("http://[::1]:80", true),
            ("http://10.0.0.1", false),
            ("http://example.org", false),
            ("http://169.254.169.254", false),
            ("nope", false),
        ];
        for (host, ok) in hosts {
            assert_eq!(check_loopback(host).is_ok(), ok, "{host}");
        }
    }

    #[test]
    fn sums_metric_lines_by_label() {
        let text = "# HELP x\nbytes_total{transport=\"poll\",route=\"a\"} 10\n\
                    bytes_total{transport=\"poll\",route=\"b\"} 5\n\
                    bytes_total{transport=\"sse\"} 7\nbytes_totalx 1\n";
        assert_eq!(metric(text, "bytes_total", &["transport=\"poll\""]), 15.0);
        assert_eq!(metric(text, "bytes_total", &[]), 22.0);
    }
}
