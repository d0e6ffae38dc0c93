//! `runfeed` end to end on a small scale: it starts the app, drives the feed, runs a
//! polling and an SSE phase and writes every report.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_short_run_writes_the_summary_plots_and_goose_reports() {
    let runfeed = PathBuf::from(env!("CARGO_BIN_EXE_runfeed"));
    let app = runfeed.with_file_name("switchyard");
    assert!(
        app.exists(),
        "{} is built with the workspace",
        app.display()
    );
    let out = std::env::temp_dir().join(format!("runfeed-test-{}", std::process::id()));

    let run = Command::new(&runfeed)
        .args([
            "--users",
            "6",
            "--duration",
            "3",
            "--intervals",
            "0.5",
            "--rate",
            "4",
        ])
        .arg("--server-binary")
        .arg(&app)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runfeed runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    for phase in ["| poll-0.5s | 6 |", "| sse | 6 |"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(phase))
            .unwrap_or_else(|| panic!("no row {phase} in\n{summary}"));
        let items: u64 = row.split('|').nth(3).unwrap().trim().parse().unwrap();
        assert!(items > 0, "{phase} delivered nothing:\n{summary}");
        assert!(row.ends_with("| 0 |"), "errors in {row}");
    }
    for file in [
        "delays.svg",
        "server.svg",
        "goose-poll-0.5s-0.html",
        "goose-sse-0.html",
    ] {
        let len = std::fs::metadata(out.join(file)).map_or(0, |m| m.len());
        assert!(len > 500, "{file} is missing or empty");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn hosts_off_this_machine_are_refused() {
    let run = Command::new(env!("CARGO_BIN_EXE_runfeed"))
        .args(["--host", "http://example.invalid:8000", "--duration", "1"])
        .output()
        .expect("runfeed runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("only target this machine"), "{stderr}");
}
