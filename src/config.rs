//! Typed configuration: flags with environment fallbacks and defaults that run out of
//! the box (SQLite file, in-process bus, the bundled Mastodon replay).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::live::Transport;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Live views over htmx polling and SSE"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the app (the default).
    Serve,
    /// Run only the Mastodon ingester (one per deployment), without serving pages.
    Ingest,
    /// Record a live instance's public stream to a replay file.
    Record(RecordArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The file to write, in the Mastodon streaming wire format.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this many events.
    #[arg(long)]
    pub max_events: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub max_seconds: Option<u64>,
}

#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// sqlite://FILE or postgres://… ; SQLite files are created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://switchyard.db")]
    pub database_url: String,

    /// redis://… : share events between instances through Redis Streams. Without it
    /// the bus is in-process (one instance).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Namespace of this deployment's Redis keys.
    #[arg(long, env = "SWITCHYARD_REDIS_PREFIX", default_value = "switchyard")]
    pub redis_prefix: String,

    /// Connections in the database pool.
    #[arg(long, env = "SWITCHYARD_DB_CONNECTIONS", default_value_t = 8)]
    pub db_connections: u32,

    /// Mirror this Mastodon instance's public stream (e.g. https://mastodon.example)
    /// instead of replaying a file.
    #[arg(long, env = "MASTODON_INSTANCE")]
    pub mastodon_instance: Option<String>,

    /// Bearer token for the instance's streaming API, when it asks for one.
    #[arg(long, env = "MASTODON_TOKEN", hide_env_values = true)]
    pub mastodon_token: Option<String>,

    /// Replay this recorded stream instead of the bundled sample.
    #[arg(long, env = "SWITCHYARD_REPLAY_FILE")]
    pub replay_file: Option<PathBuf>,

    /// Replayed events per second.
    #[arg(long, env = "SWITCHYARD_REPLAY_RATE", default_value_t = 2.0)]
    pub replay_rate: f64,

    /// Play the replay once instead of looping it.
    #[arg(long, env = "SWITCHYARD_REPLAY_ONCE", value_parser = BoolishValueParser::new())]
    pub replay_once: bool,

    /// Do not mirror any Mastodon source (another process ingests, or none is wanted).
    #[arg(long, env = "SWITCHYARD_NO_INGEST", value_parser = BoolishValueParser::new())]
    pub no_ingest: bool,

    /// Transport for browsers that have not chosen one.
    #[arg(long, env = "SWITCHYARD_TRANSPORT", value_enum, default_value_t = Transport::Sse)]
    pub transport: Transport,

    /// Poll interval in milliseconds for the polling transport.
    #[arg(long, env = "SWITCHYARD_POLL_MS", default_value_t = 2000)]
    pub poll_ms: u64,

    /// SSE keep-alive comment interval in seconds.
    #[arg(long, env = "SWITCHYARD_KEEP_ALIVE_SECS", default_value_t = 15)]
    pub keep_alive_secs: u64,

    /// Events kept per topic for SSE resume (with Redis: the streams' approximate
    /// MAXLEN).
    #[arg(long, env = "SWITCHYARD_HISTORY", default_value_t = 256)]
    pub history: usize,

    /// Events queued per SSE client before it is reset instead.
    #[arg(long, env = "SWITCHYARD_CLIENT_QUEUE", default_value_t = 256)]
    pub client_queue: usize,

    /// Open SSE streams allowed at once; more are refused with 503.
    #[arg(long, env = "SWITCHYARD_MAX_STREAMS", default_value_t = 19_000)]
    pub max_streams: usize,

    /// Mastodon statuses kept in the database.
    #[arg(long, env = "SWITCHYARD_RETENTION", default_value_t = 1000)]
    pub retention: i64,

    /// Log format.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The configuration with every default, for tests and benches.
    pub fn defaults() -> Self {
        Cli::parse_from(["switchyard"]).config
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(100))
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs.max(1))
    }
}
