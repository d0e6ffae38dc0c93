//! The run's results as a Markdown summary and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::follow::Tally;
use crate::stats::Summary;

/// One phase: one transport followed by `users` clients while the feed ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    /// `None` for SSE.
    pub poll_ms: Option<u64>,
    pub users: usize,
    /// Seconds the phase was measured over.
    pub secs: f64,
    pub tally: Tally,
    pub posted: u64,
    pub post_failures: u64,
    /// Server CPU in cores and RSS in MiB, one reading a second.
    pub server: Vec<(f64, f64, f64)>,
    /// Poll answers with new items and with nothing new, from the server's metrics.
    pub answers_new: f64,
    pub answers_empty: f64,
}

impl Phase {
    pub fn summary(&self) -> Summary {
        self.tally.delays.summary()
    }

    pub fn requests_per_sec(&self) -> f64 {
        self.tally.requests as f64 / self.secs.max(1e-9)
    }

    pub fn bytes_per_client_sec(&self) -> f64 {
        self.tally.bytes as f64 / self.users.max(1) as f64 / self.secs.max(1e-9)
    }

    /// Mean server CPU, in cores, over the readings after the first.
    pub fn cpu(&self) -> Option<f64> {
        let readings: Vec<f64> = self.server.iter().skip(1).map(|r| r.1).collect();
        (!readings.is_empty()).then(|| readings.iter().sum::<f64>() / readings.len() as f64)
    }

    pub fn rss_max(&self) -> Option<f64> {
        self.server.iter().map(|r| r.2).reduce(f64::max)
    }
}

/// The Markdown summary.
pub fn markdown(phases: &[Phase], command: &str, rate: f64) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# runfeed results\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(
        md,
        "Feed: {rate} posts/s on the all-posts timeline, half of them mentioning a \
         follower. Delay is publish (the server's clock when the post was written) to \
         arrival at the client. Bytes are what a client received: status line, headers \
         and body.\n"
    );
    let _ = writeln!(
        md,
        "| phase | users | items | p50 ms | p95 ms | p99 ms | max ms | requests/s | \
         bytes/s per client | server CPU (cores) | server RSS (MiB) | errors |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for phase in phases {
        let s = phase.summary();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            phase.name,
            phase.users,
            s.count,
            s.p50,
            s.p95,
            s.p99,
            s.max,
            phase.requests_per_sec(),
            phase.bytes_per_client_sec(),
            phase.cpu().map_or("n/a".into(), |c| format!("{c:.3}")),
            phase.rss_max().map_or("n/a".into(), |r| format!("{r:.1}")),
            phase.tally.errors,
        );
    }

    if let Some(sse) = phases.iter().find(|p| p.poll_ms.is_none()) {
        let _ = writeln!(md, "\n## Polling against SSE\n");
        let _ = writeln!(
            md,
            "| polling phase | requests × | bytes × | server CPU × | p50 delay × | p99 delay × |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for poll in phases.iter().filter(|p| p.poll_ms.is_some()) {
            let cpu = match (poll.cpu(), sse.cpu()) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                poll.name,
                ratio(poll.requests_per_sec(), sse.requests_per_sec()),
                ratio(poll.bytes_per_client_sec(), sse.bytes_per_client_sec()),
                cpu,
                ratio(poll.summary().p50, sse.summary().p50),
                ratio(poll.summary().p99, sse.summary().p99),
            );
        }
        let _ = writeln!(
            md,
            "\nEach figure is the polling phase's divided by the SSE phase's."
        );
    }

    let _ = writeln!(md, "\n## Feed and errors\n");
    for phase in phases {
        let _ = writeln!(
            md,
            "- {}: {} posts written ({} failed); poll answers with items {}, empty {}{}",
            phase.name,
            phase.posted,
            phase.post_failures,
            phase.answers_new,
            phase.answers_empty,
            phase
                .tally
                .first_error
                .as_ref()
                .map_or(String::new(), |e| format!("; first error: {e}")),
        );
    }
    let _ = writeln!(
        md,
        "\nPlots: `delays.svg` (share of items by delay), `server.svg` (server CPU and RSS \
         during each phase). goose's own reports: `goose-*.html`."
    );
    md
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        "n/a".into()
    } else {
        format!("{:.1}", a / b)
    }
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The share of items delivered within each delay, one line per phase, log time axis.
pub fn plot_delays(phases: &[Phase], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let longest = phases
        .iter()
        .map(|p| p.summary().max)
        .fold(10.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Publish-to-arrival delay", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.1_f64..longest * 1.2).log_scale(), 0.0_f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("delay (ms, log scale)")
        .y_desc("share of items")
        .draw()?;
    let lines = phases.iter().map(|phase| {
        let mut sorted = phase.tally.delays.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len().max(1) as f64;
        let step = (sorted.len() / 400).max(1);
        let points = sorted
            .iter()
            .enumerate()
            .step_by(step)
            .map(|(k, &d)| (d.max(0.1), (k + 1) as f64 / n))
            .collect();
        (phase.name.clone(), points)
    });
    draw_lines(&mut chart, lines, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

/// Server CPU (cores) and RSS (MiB) over each phase's seconds.
pub fn plot_server(phases: &[Phase], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (800, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    let secs = phases
        .iter()
        .flat_map(|p| p.server.iter().map(|r| r.0))
        .fold(1.0_f64, f64::max);
    for (area, title, pick, unit) in [
        (&top, "Server CPU", 1usize, "cores"),
        (&bottom, "Server RSS", 2usize, "MiB"),
    ] {
        let value = |r: &(f64, f64, f64)| if pick == 1 { r.1 } else { r.2 };
        let most = phases
            .iter()
            .flat_map(|p| p.server.iter().map(value))
            .fold(0.01_f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0_f64..secs, 0.0_f64..most * 1.15)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the phase")
            .y_desc(unit)
            .draw()?;
        let lines = phases.iter().map(|phase| {
            let points = phase.server.iter().skip(1).map(|r| (r.0, value(r)));
            (phase.name.clone(), points.collect())
        });
        // RSS lines run flat near the top; their legend goes below them.
        let legend_at = if pick == 1 {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        };
        draw_lines(&mut chart, lines, legend_at)?;
    }
    root.present()?;
    Ok(())
}

/// One coloured, labelled line per phase, and the legend.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: impl Iterator<Item = (String, Vec<(f64, f64)>)>,
    legend_at: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend_at)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Delays;

    fn phase(name: &str, poll_ms: Option<u64>, delays: Vec<f64>, requests: u64) -> Phase {
        Phase {
            name: name.into(),
            poll_ms,
            users: 10,
            secs: 10.0,
            tally: Tally {
                delays: Delays { ms: delays },
                requests,
                bytes: 10_000,
                ..Tally::default()
            },
            server: vec![(0.0, 0.0, 20.0), (1.0, 0.5, 21.0), (2.0, 0.3, 22.0)],
            ..Phase::default()
        }
    }

    #[test]
    fn summary_has_a_row_per_phase_and_ratios_against_sse() {
        let phases = [
            phase("poll-1s", Some(1000), vec![500.0, 900.0], 100),
            phase("sse", None, vec![5.0, 10.0], 10),
        ];
        let md = markdown(&phases, "make runfeed", 2.0);
        assert!(md.contains("| poll-1s | 10 | 2 | 500.0 |"), "{md}");
        assert!(md.contains("| sse | 10 | 2 | 5.0 |"), "{md}");
        // 100 against 10 requests, 500 against 5 ms at the median.
        assert!(
            md.contains("| poll-1s | 10.0 | 1.0 | 1.0 | 100.0 |"),
            "{md}"
        );
        assert_eq!(phases[0].cpu(), Some(0.4));
        assert_eq!(phases[0].rss_max(), Some(22.0));
    }

    #[test]
    fn plots_are_written() {
        let dir = std::env::temp_dir().join(format!("runfeed-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let phases = [phase("poll-1s", Some(1000), vec![500.0, 900.0], 100)];
        plot_delays(&phases, &dir.join("d.svg")).unwrap();
        plot_server(&phases, &dir.join("s.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("d.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("poll-1s"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
