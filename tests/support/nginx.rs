//! Real nginx in front of test apps: deploy/nginx.conf, rendered by
//! deploy/render-nginx.sh with loopback ports and a temp folder for its pid, temp files
//! and logs, run in the foreground and stopped when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long nginx gets to start listening, and to stop.
const PATIENCE: Duration = Duration::from_secs(10);

/// Distinct free ports on 127.0.0.1. The listeners are held until all are known, so
/// no two are the same; they are released for the caller to bind.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}

/// The nginx binary: `$NGINX` when set, else Debian's /usr/sbin/nginx, else nginx on
/// the PATH.
fn binary() -> PathBuf {
    const MISSING: &str = "these tests run real nginx: install Debian's package with \
                           `apt-get install nginx`, or set NGINX to the binary";
    if let Some(path) = std::env::var_os("NGINX").map(PathBuf::from) {
        assert!(
            path.is_file(),
            "NGINX={} is not a file; {MISSING}",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    });
    [Some(PathBuf::from("/usr/sbin/nginx")), on_path]
        .into_iter()
        .flatten()
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("nginx not found in /usr/sbin or on the PATH; {MISSING}"))
}

/// A running nginx; dropping it stops it and removes its folder.
pub struct Nginx {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, the address clients use.
    pub base: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free port in front of the app instances on `upstreams`.
    pub async fn start(upstreams: [u16; 2]) -> Nginx {
        let [port] = free_ports();
        let dir = tempfile::tempdir().expect("temp dir");
        // Started as root, nginx runs its workers as nobody, who must reach the temp
        // folders nginx makes inside this one.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("temp dir permissions");
        let run_dir = dir.path().join("run");
        std::fs::create_dir(&run_dir).expect("run dir");

        let config = dir.path().join("nginx.conf");
        render(
            &config,
            &[
                ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
                ("NGINX_APP_A", format!("127.0.0.1:{}", upstreams[0])),
                ("NGINX_APP_B", format!("127.0.0.1:{}", upstreams[1])),
                ("NGINX_RUN_DIR", path_text(&run_dir)),
                (
                    "NGINX_ACCESS_LOG",
                    path_text(&dir.path().join("access.log")),
                ),
                ("NGINX_ERROR_LOG", path_text(&dir.path().join("error.log"))),
            ],
        );

        let output = std::fs::File::create(dir.path().join("output.log")).expect("output log");
        let child = Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("output log"))
            .stderr(output)
            .spawn()
            .expect("starting nginx");
        let mut nginx = Nginx {
            port,
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            dir,
        };
        nginx.wait_listening().await;
        nginx
    }

    async fn wait_listening(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("nginx exited at start ({status}):\n{}", self.logs());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "nginx did not listen on {address} within {PATIENCE:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access log so far: one line per finished request, with the upstream(s) tried.
    pub fn access_log(&self) -> String {
        read(&self.dir.path().join("access.log"))
    }

    /// nginx's own output and error log, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- output\n{}--- error.log\n{}",
            read(&self.dir.path().join("output.log")),
            read(&self.dir.path().join("error.log"))
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM, not SIGKILL: the master stops its workers before it exits, where a
        // killed master would leave them holding the port.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The upstreams' `fail_timeout` in deploy/nginx.conf: how long nginx skips an instance
/// that refused a connection, even once it is back.
pub fn fail_timeout() -> Duration {
    let template = read(&template_dir().join("nginx.conf"));
    let seconds = template
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let rest = &line[line.find("fail_timeout=")? + "fail_timeout=".len()..];
            rest[..rest.find('s')?].parse().ok()
        })
        .expect("a `fail_timeout=Ns` in deploy/nginx.conf");
    Duration::from_secs(seconds)
}

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Renders deploy/nginx.conf into `out` with the script every deployment uses.
fn render(out: &Path, settings: &[(&str, String)]) {
    let script = template_dir().join("render-nginx.sh");
    let output = Command::new("sh")
        .arg(&script)
        .envs(settings.iter().map(|(name, value)| (name, value)))
        .output()
        .expect("running deploy/render-nginx.sh");
    assert!(
        output.status.success(),
        "deploy/render-nginx.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, output.stdout).expect("writing nginx.conf");
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
