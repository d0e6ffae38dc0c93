//! `make runfeed`: the same feed followed by polling clients and by SSE clients, one
//! transport at a time, with the server's CPU and memory read from /proc meanwhile.
//! Writes `summary.md`, plots and goose's HTML reports under `target/runfeed/`.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use loadtests::feed::{self, Driven};
use loadtests::follow::{self, Tally, WorkerSpec};
use loadtests::report::{self, Phase};
use loadtests::{procstat, server};
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Polling against SSE on one live feed, measured")]
struct Args {
    /// The app to load, e.g. http://127.0.0.1:8000 (loopback only). Without it, the
    /// release build of the app next to this binary is started on a free port.
    #[arg(long)]
    host: Option<String>,
    /// The server's process id, for CPU and memory readings when --host is given.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The app binary to start when no --host is given.
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// Clients per phase.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Posts written per second.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Poll intervals in seconds, one polling phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    intervals: Vec<f64>,
    /// Seconds each phase is measured.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Accounts the clients log in as (each client shares one with others, as tabs do).
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Client processes per phase; each holds users/processes connections.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Skip the SSE phase.
    #[arg(long)]
    no_sse: bool,
    #[arg(long, default_value = "target/runfeed")]
    out: PathBuf,
    /// Internal: run one client process from this JSON spec.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// Seconds allowed for the users of a phase to start before measuring.
const RAMP_SECS: u64 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.worker {
        Some(spec) => match serde_json::from_str::<WorkerSpec>(spec) {
            Ok(spec) => follow::run_worker(spec).await,
            Err(error) => Err(anyhow::Error::new(error).context("worker spec")),
        },
        None => match check(&args) {
            Ok(()) => server::or_interrupted(run(args)).await,
            Err(error) => Err(error),
        },
    };
    server::exit_code("runfeed", result)
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    if let Some(host) = &args.host {
        let host = server::check_host(host)?;
        server::wait_healthy(&host, Duration::from_secs(5)).await?;
        args.host = Some(host);
    }

    let spawned = match &args.host {
        Some(_) => None,
        None => {
            let binary = args
                .server_binary
                .clone()
                .unwrap_or_else(server::default_binary);
            if !binary.exists() {
                bail!(
                    "{} is missing: build it with cargo build --release",
                    binary.display()
                );
            }
            println!("runfeed: starting {}", binary.display());
            Some(server::spawn(&binary, 2000, &args.out.join("server.log")).await?)
        }
    };
    let host = args
        .host
        .clone()
        .or_else(|| spawned.as_ref().map(|s| s.base.clone()))
        .expect("a host");
    let pid = args.server_pid.or(spawned.as_ref().map(|s| s.pid));

    let stamp = loadtests::now_ms() % 1_000_000;
    let poster = feed::sign_up(&host, &format!("rf{stamp}p")).await?;
    let mut handles = Vec::new();
    let mut cookies = Vec::new();
    for i in 0..args.accounts {
        let handle = format!("rf{stamp}a{i}");
        cookies.push(feed::sign_up(&host, &handle).await?);
        handles.push(handle);
    }
    println!(
        "runfeed: {} on {host}; {} accounts signed up",
        phases_text(&args),
        args.accounts
    );

    let mut phases = Vec::new();
    let mut plan: Vec<(String, Option<u64>)> = args
        .intervals
        .iter()
        .map(|s| (format!("poll-{s}s"), Some((s * 1000.0).round() as u64)))
        .collect();
    if !args.no_sse {
        plan.push(("sse".into(), None));
    }
    for (name, poll_ms) in plan {
        let phase = run_phase(
            &args, &host, pid, &poster, &handles, &cookies, name, poll_ms,
        )
        .await?;
        phases.push(phase);
    }

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let md = report::markdown(&phases, &command, args.rate);
    std::fs::write(args.out.join("summary.md"), &md)?;
    std::fs::write(
        args.out.join("phases.json"),
        serde_json::to_vec_pretty(&phases)?,
    )?;
    report::plot_delays(&phases, &args.out.join("delays.svg"))?;
    report::plot_server(&phases, &args.out.join("server.svg"))?;
    println!("\n{md}");
    println!("runfeed: reports in {}", args.out.display());
    drop(spawned);
    Ok(())
}

fn check(args: &Args) -> anyhow::Result<()> {
    if args.users == 0 || args.accounts == 0 || args.processes == 0 || args.duration == 0 {
        bail!("--users, --accounts, --processes and --duration must be above zero");
    }
    if !(args.rate > 0.0 && args.rate <= 1000.0) {
        bail!("--rate must be above 0 and at most 1000 posts/s");
    }
    if args.intervals.iter().any(|s| !(*s >= 0.05 && *s <= 600.0)) {
        bail!("--intervals are seconds between 0.05 and 600");
    }
    // Every connection is a file; each process may hold 20,000 at most.
    if args.users / args.processes > 15_000 {
        bail!("more than 15,000 users per process: raise --processes");
    }
    Ok(())
}

fn phases_text(args: &Args) -> String {
    let polls: Vec<String> = args
        .intervals
        .iter()
        .map(|s| format!("poll every {s}s"))
        .collect();
    let sse = if args.no_sse { "" } else { ", SSE" };
    format!(
        "{} users per phase ({}{sse}), {} posts/s, {} s each",
        args.users,
        polls.join(", "),
        args.rate,
        args.duration
    )
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    args: &Args,
    host: &str,
    pid: Option<u32>,
    poster: &str,
    handles: &[String],
    cookies: &[String],
    name: String,
    poll_ms: Option<u64>,
) -> anyhow::Result<Phase> {
    let total = RAMP_SECS + args.duration;
    let end_ms = loadtests::now_ms() + total * 1000;
    let driven = Arc::new(Driven::default());
    let until = Instant::now() + Duration::from_secs(total);
    let driver = tokio::spawn(feed::drive(
        host.to_owned(),
        poster.to_owned(),
        args.rate,
        until,
        handles.to_vec(),
        driven.clone(),
    ));

    let me = std::env::current_exe()?;
    let mut workers = Vec::new();
    let mut tallies = Vec::new();
    for k in 0..args.processes {
        let users = args.users / args.processes + usize::from(k < args.users % args.processes);
        let tally_file = args.out.join(format!("tally-{name}-{k}.json"));
        let spec = WorkerSpec {
            phase: name.clone(),
            poll_ms,
            host: host.to_owned(),
            users,
            run_secs: total,
            cookies: cookies.to_vec(),
            first_source: 2 + (k as u8 % 4) * 50,
            end_ms,
            report_file: args
                .out
                .join(format!("goose-{name}-{k}.html"))
                .display()
                .to_string(),
            tally_file: tally_file.display().to_string(),
        };
        let log = std::fs::File::create(args.out.join(format!("goose-{name}-{k}.log")))?;
        let child = tokio::process::Command::new(&me)
            .arg("--worker")
            .arg(serde_json::to_string(&spec)?)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        workers.push(child);
        tallies.push(tally_file);
    }

    // Readings from the end of the ramp on, once a second, with progress.
    tokio::time::sleep(Duration::from_secs(RAMP_SECS)).await;
    let started = Instant::now();
    let before = metrics_text(host).await;
    let mut server = Vec::new();
    let mut last = pid.and_then(procstat::read);
    while started.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let (Some(prev), Some(now)) = (last, pid.and_then(procstat::read)) {
            let t = started.elapsed().as_secs_f64();
            let cores = procstat::cores_between(&prev, &now);
            server.push((t, cores, now.rss_kib as f64 / 1024.0));
            last = Some(now);
        }
        let secs = started.elapsed().as_secs();
        if secs.is_multiple_of(5) {
            let cpu = server
                .last()
                .map_or("n/a".into(), |r| format!("{:.2} cores", r.1));
            println!(
                "runfeed: {name}: {secs}/{} s, {} posts, server {cpu}",
                args.duration,
                driven.posted.load(Ordering::Relaxed)
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = metrics_text(host).await;
    if let Some(first) = server.first_mut() {
        first.0 = 0.0;
    }

    for mut worker in workers {
        let status = tokio::time::timeout(Duration::from_secs(60), worker.wait()).await;
        match status {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => bail!("a {name} client process failed ({status}); see its log"),
            Ok(Err(error)) => bail!("a {name} client process: {error}"),
            Err(_) => bail!("a {name} client process did not stop within 60 s"),
        }
    }
    let _ = driver.await;

    let mut tally = Tally::default();
    for file in tallies {
        let part: Tally = serde_json::from_slice(&std::fs::read(&file)?)
            .with_context(|| format!("{}", file.display()))?;
        tally.delays.extend(&part.delays);
        tally.requests += part.requests;
        tally.errors += part.errors;
        tally.bytes += part.bytes;
        tally.first_error = tally.first_error.or(part.first_error);
        let _ = std::fs::remove_file(&file);
    }
    let answers = |outcome: &str, text: &str| {
        server::metric(
            text,
            "switchyard_poll_answers_total",
            &[&format!("outcome=\"{outcome}\"")],
        )
    };
    let phase = Phase {
        name,
        poll_ms,
        users: args.users,
        // Clients counted from their start; the ramp is part of their time.
        secs: secs + RAMP_SECS as f64,
        tally,
        posted: driven.posted.load(Ordering::Relaxed),
        post_failures: driven.failed.load(Ordering::Relaxed),
        server,
        answers_new: answers("new", &after) - answers("new", &before),
        answers_empty: answers("nothing_new", &after) - answers("nothing_new", &before),
    };
    let s = phase.summary();
    println!(
        "runfeed: {} done: {} items, p50 {:.1} ms, p99 {:.1} ms, {:.0} requests/s, {} errors",
        phase.name,
        s.count,
        s.p50,
        s.p99,
        phase.requests_per_sec(),
        phase.tally.errors
    );
    Ok(phase)
}

async fn metrics_text(host: &str) -> String {
    let answer = reqwest::get(format!("{host}/metrics")).await;
    match answer {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}
