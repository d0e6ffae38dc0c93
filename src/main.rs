use clap::Parser;
use switchyard::config::{Cli, Command, LogFormat};
use switchyard::{Application, mastodon};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.config.log_format);

    match cli.command {
        None | Some(Command::Serve) => Application::build(cli.config).await?.run().await,
        Some(Command::Ingest) => switchyard::app::run_ingester(cli.config).await,
        Some(Command::Record(args)) => mastodon::record::run(&cli.config, &args).await,
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    // Colour codes only for a person at a terminal, not in log files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
