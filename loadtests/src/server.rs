//! The app under test: started here on a free loopback port with a throw-away SQLite
//! database, or an address given by the user, which must be on this machine.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};

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
    let mut server = Spawned {
        base,
        pid,
        child,
        _dir: dir,
    };

    let started = Instant::now();
    while !healthy(&server.base).await {
        if let Some(status) = server.child.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{} exited at once ({status}):\n{log}", binary.display());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{} did not answer /healthz within 30 s", binary.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(server)
}

async fn healthy(base: &str) -> bool {
    let answer = reqwest::get(format!("{base}/healthz")).await;
    answer.is_ok_and(|a| a.status().is_success())
}

/// Waits for `/healthz` to answer 200.
pub async fn wait_healthy(base: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if healthy(base).await {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("{base} did not become healthy within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The exit code of a tool's run, printing its error as one readable message (with its
/// causes) rather than a debug dump and, with `RUST_BACKTRACE` set, a stack trace.
pub fn exit_code(tool: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{tool}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` until it ends or the process is told to stop (Ctrl-C, SIGTERM). On a
/// signal `work` is dropped, and with it the server and client processes it started.
pub async fn or_interrupted<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the servers this run started are stopped"),
        _ = terminate.recv() => bail!("terminated; the servers this run started are stopped"),
    }
}

/// The base address of `--host` (`http://127.0.0.1:8000`), refused when it is not this
/// machine (load goes to loopback only) or not a plain HTTP origin.
pub fn check_host(host: &str) -> anyhow::Result<String> {
    check_loopback(host)?;
    let url = reqwest::Url::parse(host)?;
    if url.scheme() != "http" || !matches!(url.path(), "" | "/") || url.query().is_some() {
        bail!("--host {host}: give an origin such as http://127.0.0.1:8000, without a path");
    }
    Ok(host.trim_end_matches('/').to_owned())
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

/// The app binary to start: the one built beside this one, else the release build in
/// `$CARGO_TARGET_DIR` or `./target`.
pub fn default_binary() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("switchyard"));
    if let Some(sibling) = sibling.filter(|path| path.exists()) {
        return sibling;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    target.join("release").join("switchyard")
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
    fn hosts_are_plain_origins() {
        assert_eq!(
            check_host("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            check_host("http://localhost:1").unwrap(),
            "http://localhost:1"
        );
        for bad in [
            "ftp://127.0.0.1",
            "http://127.0.0.1/path",
            "http://127.0.0.1/?q",
        ] {
            let message = check_host(bad).unwrap_err().to_string();
            assert!(message.contains("without a path"), "{bad}: {message}");
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
