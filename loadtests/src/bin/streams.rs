//! `streams`: how many SSE streams one Switchyard process holds, how much memory each
//! costs it, and how quickly it delivers to all of them.
//!
//! Opens N anonymous streams at a ramp rate from several loopback source addresses
//! (and, past the open files limit, several client processes), holds them, and
//! measures every item's publish-to-arrival delay from the `data-published-ms` the
//! server stamps on it. With `--spawn-server` it starts and stops the server itself.
//!
//! Only loopback targets are accepted: this is a tool for a server you run yourself.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use loadtests::procstat::{self, Reading};
use loadtests::sse::{Chunked, SseParser, delay_ms, new_item_published_ms};
use loadtests::stats::{Histogram, SparseHistogram, Summary};
use loadtests::{now_ms, server};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Delays are counted per millisecond up to this; later ones only count and set the max.
const DELAY_RANGE_MS: u64 = 120_000;
/// Ephemeral ports per source address, with some room left (32768..60999 by default).
const PORTS_PER_SOURCE: usize = 25_000;
/// File descriptors a client process keeps for itself besides its streams.
const SPARE_FDS: u64 = 200;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "streams",
    about = "Opens many SSE streams to a loopback Switchyard and measures delivery"
)]
struct Args {
    /// Server to follow (loopback only); ignored with --spawn-server.
    #[arg(long, default_value = "127.0.0.1:8000")]
    target: SocketAddr,
    /// The stream's path.
    #[arg(long, default_value = "/realtime/content/stream/")]
    path: String,
    /// Streams to open.
    #[arg(long, default_value_t = 2_000)]
    streams: usize,
    /// Streams opened per second, all client processes together.
    #[arg(long, default_value_t = 1_000.0)]
    ramp: f64,
    /// Seconds the streams stay open after the ramp's planned end.
    #[arg(long, default_value_t = 40)]
    hold_secs: u64,
    /// Seconds after the ramp before the measurement window opens.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Source addresses 127.0.0.2, 127.0.0.3, …; 0 picks enough for the streams.
    #[arg(long, default_value_t = 0)]
    sources: usize,
    /// Client processes; 0 picks enough to stay under the open files limit.
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// The server's process id, for its memory and CPU (set by --spawn-server).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start `switchyard serve` on a free loopback port with a fresh SQLite database,
    /// and stop it at the end.
    #[arg(long)]
    spawn_server: bool,
    /// The server binary for --spawn-server; default `switchyard` next to this program,
    /// else `$CARGO_TARGET_DIR/release/switchyard` or `target/release/switchyard`.
    #[arg(long, env = "SWITCHYARD_BIN")]
    server_bin: Option<PathBuf>,
    /// Replayed statuses per second of the spawned server.
    #[arg(long, default_value_t = 1.0)]
    replay_rate: f64,
    /// Stream limit of the spawned server.
    #[arg(long, default_value_t = 19_500)]
    max_streams: usize,
    /// Keep-alive interval of the spawned server, in seconds.
    #[arg(long)]
    keep_alive_secs: Option<u64>,
    /// Per-client queue of the spawned server.
    #[arg(long)]
    client_queue: Option<usize>,
    /// History per topic of the spawned server.
    #[arg(long)]
    history: Option<usize>,
    /// A further argument for the spawned server (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Seconds a stream may take to connect and get its response headers.
    #[arg(long, default_value_t = 15)]
    connect_timeout_secs: u64,
    /// Where the Markdown summary is written as well as to stdout.
    #[arg(long, default_value = "target/streams/summary.md")]
    summary: PathBuf,
    /// One client process's share, as JSON (used when the tool runs itself).
    #[arg(long, hide = true)]
    worker_plan: Option<String>,
}

/// What one client process does: the streams with global index `first`, `first + step`, …
/// below `total`, on a timeline in Unix milliseconds shared by all processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkerPlan {
    target: SocketAddr,
    path: String,
    first: usize,
    step: usize,
    total: usize,
    sources: usize,
    /// This process's streams per second.
    ramp: f64,
    start_ms: u64,
    window_start_ms: u64,
    end_ms: u64,
    connect_timeout_ms: u64,
}

impl WorkerPlan {
    fn count(&self) -> usize {
        (self.total.saturating_sub(self.first)).div_ceil(self.step)
    }
}

/// What one client process saw.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WorkerReport {
    requested: u64,
    opened: u64,
    failed: BTreeMap<String, u64>,
    /// Streams that opened and then ended before the run did, by reason.
    ended: BTreeMap<String, u64>,
    open_at_end: u64,
    /// Events by name over the whole run.
    events: BTreeMap<String, u64>,
    /// Events arriving inside the measurement window.
    window_events: u64,
    /// Events that give no delay: edits and deletions.
    untimed: u64,
    body_bytes: u64,
    delays_all: SparseHistogram,
    delays_window: SparseHistogram,
    /// When this process's last stream opened.
    last_open_ms: u64,
    /// Own CPU over the window, in cores.
    cpu_cores: f64,
    rss_kib: u64,
}

/// Counters the stream tasks of one process share.
struct Shared {
    plan: WorkerPlan,
    opened: AtomicU64,
    open_at_end: AtomicU64,
    window_events: AtomicU64,
    untimed: AtomicU64,
    body_bytes: AtomicU64,
    last_open_ms: AtomicU64,
    tallies: Mutex<Tallies>,
}

struct Tallies {
    failed: BTreeMap<String, u64>,
    ended: BTreeMap<String, u64>,
    events: BTreeMap<String, u64>,
    delays_all: Histogram,
    delays_window: Histogram,
}

impl Shared {
    fn tallies(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The tokio instant at a Unix time in milliseconds.
fn instant_at(unix_ms: u64) -> Instant {
    let now = now_ms();
    if unix_ms >= now {
        Instant::now() + Duration::from_millis(unix_ms - now)
    } else {
        Instant::now() - Duration::from_millis(now - unix_ms)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.worker_plan {
        Some(plan) => worker(plan).await,
        None => server::or_interrupted(run(args)).await,
    };
    server::exit_code("streams", result)
}

async fn worker(plan: &str) -> anyhow::Result<()> {
    let plan: WorkerPlan = serde_json::from_str(plan).context("reading the worker plan")?;
    let report = run_worker(plan).await;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// A server this run started, stopped when the run ends; killed, and its data removed,
/// when dropped early (an error, or the run interrupted).
struct SpawnedServer {
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    if args.streams == 0 || !(args.ramp > 0.0 && args.ramp.is_finite()) {
        bail!("--streams and --ramp must be positive numbers");
    }
    if !(args.replay_rate >= 0.0 && args.replay_rate.is_finite()) {
        bail!("--replay-rate must be a number, 0 or more");
    }
    if args.sources > 253 {
        bail!("at most 253 source addresses (127.0.0.2 to 127.0.0.254)");
    }
    if args.hold_secs <= args.settle_secs {
        bail!("--hold-secs must be longer than --settle-secs");
    }
    let mut server = None;
    if args.spawn_server {
        let spawned = spawn_server(&args).await?;
        args.target = spawned.1;
        args.server_pid = spawned.0.child.id();
        server = Some(spawned.0);
    } else if !args.target.ip().is_loopback() {
        bail!(
            "{} is not a loopback address; this tool only loads servers on this machine",
            args.target
        );
    }

    let result = measure(&args).await;
    if let Some(server) = server {
        stop_server(server).await;
    }
    let (summary, opened) = result?;
    print!("{summary}");
    if let Some(dir) = args.summary.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.summary, &summary)
        .with_context(|| format!("writing {}", args.summary.display()))?;
    eprintln!("summary written to {}", args.summary.display());
    if opened == 0 {
        bail!("no stream opened; see the failures above");
    }
    Ok(())
}

/// Streams one process may hold under its open files limit.
fn streams_per_process() -> u64 {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(1024);
    limit.saturating_sub(SPARE_FDS).max(1)
}

/// Server readings at one moment: process and `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct ServerSnapshot {
    process: Option<Reading>,
    open_streams: Option<f64>,
    events_sent: Option<f64>,
}

async fn snapshot(args: &Args) -> ServerSnapshot {
    let metrics = fetch_metrics(args.target).await.ok();
    ServerSnapshot {
        process: args.server_pid.and_then(procstat::read),
        open_streams: metrics
            .as_deref()
            .map(|m| server::metric(m, "switchyard_open_streams", &[])),
        events_sent: metrics
            .as_deref()
            .map(|m| server::metric(m, "switchyard_sse_events_sent_total", &[])),
    }
}

/// The summary, and how many streams opened.
async fn measure(args: &Args) -> anyhow::Result<(String, u64)> {
    let per_process = streams_per_process() as usize;
    let processes = match args.processes {
        0 => args.streams.div_ceil(per_process),
        p => p,
    };
    let sources = match args.sources {
        0 => args.streams.div_ceil(PORTS_PER_SOURCE).max(4),
        s => s,
    };
    if sources > 253 {
        bail!("at most 253 source addresses (127.0.0.2 to 127.0.0.254)");
    }
    if args.streams.div_ceil(processes) > per_process {
        eprintln!(
            "warning: {} streams per process exceed the open files limit's {per_process}",
            args.streams.div_ceil(processes)
        );
    }

    let ramp_ms = (args.streams as f64 / args.ramp * 1000.0).ceil() as u64;
    let start_ms = now_ms() + 500;
    let plan_of = |first: usize| WorkerPlan {
        target: args.target,
        path: args.path.clone(),
        first,
        step: processes,
        total: args.streams,
        sources,
        ramp: args.ramp / processes as f64,
        start_ms,
        window_start_ms: start_ms + ramp_ms + args.settle_secs * 1000,
        end_ms: start_ms + ramp_ms + args.hold_secs * 1000,
        connect_timeout_ms: args.connect_timeout_secs * 1000,
    };
    let first_plan = plan_of(0);
    let (window_start_ms, end_ms) = (first_plan.window_start_ms, first_plan.end_ms);

    let before = snapshot(args).await;
    let workers: Vec<tokio::task::JoinHandle<anyhow::Result<WorkerReport>>> = if processes == 1 {
        vec![tokio::spawn(
            async move { Ok(run_worker(first_plan).await) },
        )]
    } else {
        let exe = std::env::current_exe().context("finding this program")?;
        (0..processes)
            .map(|first| {
                let plan = serde_json::to_string(&plan_of(first)).expect("plans serialize");
                let exe = exe.clone();
                tokio::spawn(async move { run_child(&exe, &plan).await })
            })
            .collect()
    };

    tokio::time::sleep_until(instant_at(window_start_ms)).await;
    let window_open = snapshot(args).await;
    // The last reading just before the streams close, so that they are all still held.
    tokio::time::sleep_until(instant_at(end_ms.saturating_sub(500))).await;
    let window_close = snapshot(args).await;

    let mut reports = Vec::new();
    for worker in workers {
        reports.push(worker.await.context("client task")??);
    }
    let after_close = snapshot(args).await;
    let opened: u64 = reports.iter().map(|r| r.opened).sum();
    let summary = render(&Rendering {
        args,
        processes,
        sources,
        start_ms,
        ramp_ms,
        window_start_ms,
        end_ms,
        reports: &reports,
        server: [before, window_open, window_close, after_close],
    });
    Ok((summary, opened))
}

async fn run_child(exe: &Path, plan: &str) -> anyhow::Result<WorkerReport> {
    let output = tokio::process::Command::new(exe)
        .arg("--worker-plan")
        .arg(plan)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .context("running a client process")?;
    if !output.status.success() {
        bail!("a client process failed: {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).context("reading a client process's report")
}

/// Opens this process's streams on schedule and follows them to the end.
async fn run_worker(plan: WorkerPlan) -> WorkerReport {
    let count = plan.count();
    let shared = Arc::new(Shared {
        plan,
        opened: AtomicU64::new(0),
        open_at_end: AtomicU64::new(0),
        window_events: AtomicU64::new(0),
        untimed: AtomicU64::new(0),
        body_bytes: AtomicU64::new(0),
        last_open_ms: AtomicU64::new(0),
        tallies: Mutex::new(Tallies {
            failed: BTreeMap::new(),
            ended: BTreeMap::new(),
            events: BTreeMap::new(),
            delays_all: Histogram::new(DELAY_RANGE_MS),
            delays_window: Histogram::new(DELAY_RANGE_MS),
        }),
    });
    let plan = &shared.plan;
    let start = instant_at(plan.start_ms);
    let end = instant_at(plan.end_ms);

    let own = std::process::id();
    let cpu = tokio::spawn({
        let (from, to) = (instant_at(plan.window_start_ms), end);
        async move {
            tokio::time::sleep_until(from).await;
            let first = procstat::read(own);
            tokio::time::sleep_until(to - Duration::from_millis(300)).await;
            let last = procstat::read(own);
            match (first, last) {
                (Some(a), Some(b)) => (procstat::cores_between(&a, &b), b.rss_kib),
                _ => (0.0, 0),
            }
        }
    });

    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..count {
        let due = start + Duration::from_secs_f64(k as f64 / plan.ramp);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let index = plan.first + k * plan.step;
        tasks.spawn(follow(shared.clone(), index, end));
    }
    let requested = tasks.len() as u64;
    while tasks.join_next().await.is_some() {}
    let (cpu_cores, rss_kib) = cpu.await.unwrap_or((0.0, 0));

    let tallies = shared.tallies();
    WorkerReport {
        requested,
        opened: shared.opened.load(Ordering::Relaxed),
        failed: tallies.failed.clone(),
        ended: tallies.ended.clone(),
        open_at_end: shared.open_at_end.load(Ordering::Relaxed),
        events: tallies.events.clone(),
        window_events: shared.window_events.load(Ordering::Relaxed),
        untimed: shared.untimed.load(Ordering::Relaxed),
        body_bytes: shared.body_bytes.load(Ordering::Relaxed),
        delays_all: tallies.delays_all.to_sparse(),
        delays_window: tallies.delays_window.to_sparse(),
        last_open_ms: shared.last_open_ms.load(Ordering::Relaxed),
        cpu_cores,
        rss_kib,
    }
}

/// How a stream's life ended.
enum Outcome {
    Failed(String),
    Ended(String),
    HeldToEnd,
}

/// One stream: connect from its source address, read the response and its events
/// until the end of the run.
async fn follow(shared: Arc<Shared>, index: usize, end: Instant) {
    let plan = &shared.plan;
    let source = Ipv4Addr::new(127, 0, 0, 2 + (index % plan.sources) as u8);
    let connect_deadline =
        (Instant::now() + Duration::from_millis(plan.connect_timeout_ms)).min(end);
    let opened = tokio::time::timeout_at(connect_deadline, open(plan, source)).await;
    let outcome = match opened {
        Err(_) if Instant::now() >= end => Outcome::Failed("run ended while connecting".into()),
        Err(_) => Outcome::Failed("timed out connecting".into()),
        Ok(Err(reason)) => Outcome::Failed(reason),
        Ok(Ok((stream, leftover, chunked))) => {
            shared.opened.fetch_add(1, Ordering::Relaxed);
            shared.last_open_ms.fetch_max(now_ms(), Ordering::Relaxed);
            match tokio::time::timeout_at(end, read_events(&shared, stream, leftover, chunked))
                .await
            {
                Err(_) => Outcome::HeldToEnd,
                Ok(reason) => Outcome::Ended(reason),
            }
        }
    };
    match outcome {
        Outcome::HeldToEnd => {
            shared.open_at_end.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Failed(reason) => *shared.tallies().failed.entry(reason).or_default() += 1,
        Outcome::Ended(reason) => *shared.tallies().ended.entry(reason).or_default() += 1,
    }
}

/// Connects and reads the response head: the stream, body bytes read past the head,
/// and whether the body is chunked. Errors are short reasons, for counting.
async fn open(plan: &WorkerPlan, source: Ipv4Addr) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", e.kind()))?;
    // A port in TIME_WAIT from an earlier run may be bound again.
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("socket option: {}", e.kind()))?;
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .map_err(|e| format!("bind: {}", e.kind()))?;
    let mut stream = socket
        .connect(plan.target)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        plan.path, plan.target
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {}", e.kind()))?;

    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read head: {}", e.kind()))?;
        if n == 0 {
            return Err("closed before the response".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
    };
    let leftover = head.split_off(end);
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    if status != "200" {
        return Err(format!("HTTP {status}"));
    }
    let header = |name: &str| {
        head.lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_ascii_lowercase())
    };
    if !header("content-type").is_some_and(|t| t.starts_with("text/event-stream")) {
        return Err("HTTP 200 but not text/event-stream".into());
    }
    let chunked = header("transfer-encoding").is_some_and(|t| t.contains("chunked"));
    Ok((stream, leftover, chunked))
}

/// Reads events until the stream ends; returns why it ended.
async fn read_events(
    shared: &Shared,
    mut stream: TcpStream,
    leftover: Vec<u8>,
    chunked: bool,
) -> String {
    let window_start = shared.plan.window_start_ms;
    let mut dechunk = chunked.then(Chunked::default);
    let mut parser = SseParser::default();
    let on_event = |name: &str, data: &[u8]| {
        let arrived = now_ms();
        let in_window = arrived >= window_start;
        let delay = new_item_published_ms(data).map(|published| delay_ms(published, arrived));
        if in_window {
            shared.window_events.fetch_add(1, Ordering::Relaxed);
        }
        if delay.is_none() {
            shared.untimed.fetch_add(1, Ordering::Relaxed);
        }
        let mut tallies = shared.tallies();
        match tallies.events.get_mut(name) {
            Some(count) => *count += 1,
            None => {
                tallies.events.insert(name.to_owned(), 1);
            }
        }
        if let Some(delay) = delay {
            tallies.delays_all.record(delay);
            if in_window {
                tallies.delays_window.record(delay);
            }
        }
    };
    let mut on_event = on_event;
    let mut body = |bytes: &[u8], parser: &mut SseParser| -> Result<(), String> {
        shared
            .body_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        match dechunk.as_mut() {
            Some(dechunk) => {
                dechunk.feed(bytes, |piece| parser.feed(piece, &mut on_event))?;
                if dechunk.done() {
                    return Err("server ended the body".into());
                }
                Ok(())
            }
            None => {
                parser.feed(bytes, &mut on_event);
                Ok(())
            }
        }
    };
    if let Err(reason) = body(&leftover, &mut parser) {
        return reason;
    }
    drop(leftover);
    let mut buf = vec![0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return "server closed the connection".into(),
            Ok(n) => {
                if let Err(reason) = body(&buf[..n], &mut parser) {
                    return reason;
                }
            }
            Err(e) => return format!("read: {}", e.kind()),
        }
    }
}

/// Fetches `/metrics` with a plain HTTP/1.1 request.
async fn fetch_metrics(target: SocketAddr) -> anyhow::Result<String> {
    let fetch = async {
        let mut stream = TcpStream::connect(target).await?;
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .context("timed out fetching /metrics")??;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no response head")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!(
            "/metrics answered {}",
            head.lines().next().unwrap_or_default()
        );
    }
    let raw = &response[split + 4..];
    let mut body = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        Chunked::default()
            .feed(raw, |piece| body.extend_from_slice(piece))
            .map_err(anyhow::Error::msg)?;
    } else {
        body.extend_from_slice(raw);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn spawn_server(args: &Args) -> anyhow::Result<(SpawnedServer, SocketAddr)> {
    let bin = args
        .server_bin
        .clone()
        .unwrap_or_else(server::default_binary);
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bin switchyard` or pass --server-bin",
            bin.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = std::env::temp_dir().join(format!("switchyard-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = std::fs::File::create(dir.join("server.log"))?;

    let mut command = tokio::process::Command::new(&bin);
    // The settings are the top-level flags; `serve` comes after them.
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("switchyard.db").display()))
        .arg("--replay-rate")
        .arg(args.replay_rate.to_string())
        .arg("--max-streams")
        .arg(args.max_streams.to_string());
    if let Some(secs) = args.keep_alive_secs {
        command.arg("--keep-alive-secs").arg(secs.to_string());
    }
    if let Some(queue) = args.client_queue {
        command.arg("--client-queue").arg(queue.to_string());
    }
    if let Some(history) = args.history {
        command.arg("--history").arg(history.to_string());
    }
    command
        .args(&args.server_args)
        .arg("serve")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = SpawnedServer { child, dir };

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait()? {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            bail!("the server exited at once ({status}):\n{log}");
        }
        if fetch_metrics(addr).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            stop_server(server).await;
            bail!("the server did not answer /metrics within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A moment for the replay to publish its first statuses.
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "server {} (pid {}) on {addr}, data in {}",
        bin.display(),
        server.child.id().unwrap_or(0),
        server.dir.display()
    );
    Ok((server, addr))
}

/// Asks the server to stop (SIGTERM), and kills it when it has not within 20 s.
async fn stop_server(mut server: SpawnedServer) {
    if let Some(pid) = server.child.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(20), server.child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            eprintln!("the server did not stop within 20 s; killing it");
            let _ = server.child.kill().await;
        }
    }
}

struct Rendering<'a> {
    args: &'a Args,
    processes: usize,
    sources: usize,
    start_ms: u64,
    ramp_ms: u64,
    window_start_ms: u64,
    end_ms: u64,
    reports: &'a [WorkerReport],
    /// Before the ramp, at the window's start, at its end, after the streams closed.
    server: [ServerSnapshot; 4],
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key.clone()).or_default() += count;
    }
}

fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(reason, count)| format!("{reason} × {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn delays_text(s: &Summary) -> String {
    if s.count == 0 {
        return "no timed events".into();
    }
    format!(
        "{:.0} / {:.0} / {:.0} / {:.0} ms ({} events)",
        s.p50, s.p95, s.p99, s.max, s.count
    )
}

fn render(r: &Rendering) -> String {
    let args = r.args;
    let (mut failed, mut ended, mut events) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let (mut all, mut window) = (
        Histogram::new(DELAY_RANGE_MS),
        Histogram::new(DELAY_RANGE_MS),
    );
    let mut totals = WorkerReport::default();
    for report in r.reports {
        add_counts(&mut failed, &report.failed);
        add_counts(&mut ended, &report.ended);
        add_counts(&mut events, &report.events);
        all.merge(&report.delays_all);
        window.merge(&report.delays_window);
        totals.requested += report.requested;
        totals.opened += report.opened;
        totals.open_at_end += report.open_at_end;
        totals.window_events += report.window_events;
        totals.untimed += report.untimed;
        totals.body_bytes += report.body_bytes;
        totals.last_open_ms = totals.last_open_ms.max(report.last_open_ms);
        totals.cpu_cores += report.cpu_cores;
        totals.rss_kib += report.rss_kib;
    }
    let failed_total: u64 = failed.values().sum();
    let ended_total: u64 = ended.values().sum();
    let events_total: u64 = events.values().sum();
    let window_secs = (r.end_ms - r.window_start_ms) as f64 / 1000.0;
    let delivered = totals.window_events as f64 / window_secs;

    let [before, open, close, after] = r.server;
    let mut lines = Vec::new();
    let mut row = |name: &str, value: String| lines.push(format!("| {name} | {value} |"));
    let server = if args.spawn_server {
        format!(
            "spawned, replay {}/s, max streams {}{}",
            args.replay_rate,
            args.max_streams,
            if args.server_args.is_empty() {
                String::new()
            } else {
                format!(", `{}`", args.server_args.join(" "))
            }
        )
    } else {
        "given".into()
    };
    row(
        "Target",
        format!("`http://{}{}` ({server})", args.target, args.path),
    );
    row(
        "Client",
        format!(
            "{} process(es), {} source addresses, ramp {}/s, hold {} s, window {:.0} s",
            r.processes, r.sources, args.ramp, args.hold_secs, window_secs
        ),
    );
    row("Streams requested", args.streams.to_string());
    row(
        "Streams opened",
        format!(
            "{} (last at +{:.1} s; planned ramp {:.1} s)",
            totals.opened,
            totals.last_open_ms.saturating_sub(r.start_ms) as f64 / 1000.0,
            r.ramp_ms as f64 / 1000.0
        ),
    );
    row(
        "Streams failed",
        format!("{failed_total} ({})", counts_text(&failed)),
    );
    row(
        "Streams ended early",
        format!("{ended_total} ({})", counts_text(&ended)),
    );
    row("Streams open at the end", totals.open_at_end.to_string());
    row(
        "Events received",
        format!(
            "{events_total} ({}; {} edits or deletions, which give no delay), {:.1} MiB of body",
            counts_text(&events),
            totals.untimed,
            totals.body_bytes as f64 / 1_048_576.0
        ),
    );
    let per_stream = if totals.open_at_end > 0 {
        format!(
            ", {:.2}/s per open stream",
            delivered / totals.open_at_end as f64
        )
    } else {
        String::new()
    };
    row(
        "Events/s delivered (window)",
        format!(
            "{delivered:.0} ({} events in {window_secs:.0} s{per_stream})",
            totals.window_events
        ),
    );
    row(
        "Delay p50 / p95 / p99 / max (window)",
        delays_text(&window.summary()),
    );
    row(
        "Delay p50 / p95 / p99 / max (whole run)",
        delays_text(&all.summary()),
    );
    if let (Some(b), Some(c)) = (before.process, close.process) {
        let grown = c.rss_kib.saturating_sub(b.rss_kib);
        let open_streams = close
            .open_streams
            .map_or(totals.open_at_end as f64, |n| n)
            .max(1.0);
        row(
            "Server RSS",
            format!(
                "{:.1} MiB before, {:.1} MiB with streams open, {:.1} MiB after they closed",
                b.rss_kib as f64 / 1024.0,
                c.rss_kib as f64 / 1024.0,
                after
                    .process
                    .map_or(f64::NAN, |a| a.rss_kib as f64 / 1024.0),
            ),
        );
        row(
            "Server RSS per open stream",
            format!(
                "{:.2} KiB ({:.1} MiB over {open_streams:.0} streams)",
                grown as f64 / open_streams,
                grown as f64 / 1024.0
            ),
        );
    }
    if let (Some(o), Some(c)) = (open.process, close.process) {
        row(
            "Server CPU (window)",
            format!("{:.2} cores", procstat::cores_between(&o, &c)),
        );
    }
    row(
        "Client CPU (window)",
        format!(
            "{:.2} cores, {:.1} MiB RSS",
            totals.cpu_cores,
            totals.rss_kib as f64 / 1024.0
        ),
    );
    if let (Some(open_o), Some(open_c), Some(sent_o), Some(sent_c)) = (
        open.open_streams,
        close.open_streams,
        open.events_sent,
        close.events_sent,
    ) {
        let secs = match (open.process, close.process) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64(),
            _ => window_secs - 0.5,
        };
        row(
            "Server `/metrics` (window)",
            format!(
                "open_streams {open_o:.0} → {open_c:.0}; sse_events_sent {:.0}/s",
                (sent_c - sent_o) / secs.max(0.001)
            ),
        );
    }

    let mut out = String::from("# SSE stream capacity\n\n| Measure | Value |\n|---|---|\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "\nDelays are client arrival minus the server's `data-published-ms`, in whole ms; \
         the window runs from {} s after the planned ramp to the end of the hold.\n",
        args.settle_secs
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_cover_every_label_and_no_lookalike() {
        let text = "# TYPE open_streams gauge\nopen_streams{route=\"/a\"} 3\n\
            open_streams{route=\"/b\"} 4\nopen_streams_extra 100\n\
            sse_events_sent_total{route=\"/a\"} 10\n";
        assert_eq!(server::metric(text, "open_streams", &[]), 7.0);
        assert_eq!(server::metric(text, "sse_events_sent_total", &[]), 10.0);
        assert_eq!(server::metric(text, "missing", &[]), 0.0);
    }

    #[test]
    fn workers_share_the_streams_without_overlap() {
        let plan = |first| WorkerPlan {
            target: "127.0.0.1:1".parse().unwrap(),
            path: "/".into(),
            first,
            step: 3,
            total: 10,
            sources: 4,
            ramp: 1.0,
            start_ms: 0,
            window_start_ms: 0,
            end_ms: 0,
            connect_timeout_ms: 0,
        };
        let counts: Vec<usize> = (0..3).map(|first| plan(first).count()).collect();
        assert_eq!(counts, [4, 3, 3]);
    }
}
