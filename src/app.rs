//! Building and running the application: state, router, listener, background tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Request;
use realtime::{Bus, EventId, Presence, RedisBus, RedisBusConfig, StreamOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::accounts::store::User;
use crate::config::Config;
use crate::db::{CachedSessions, Db};
use crate::error::AppError;
use crate::heads::{self, Head};
use crate::memo::Memo;
use crate::metrics::{self, Metrics};
use crate::{accounts, assets, compare, hello, mastodon, pages, posts, security};

/// How long a session or user read from the database is trusted; see [`Memo`].
const REMEMBERED: Duration = Duration::from_secs(10);

/// How long a shutdown waits for open connections before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    /// Events of the posts sequence: the all-posts timeline and each user's mentions.
    pub posts_bus: Arc<Bus>,
    /// Events of the Mastodon mirror's change sequence.
    pub statuses_bus: Arc<Bus>,
    pub presence: Presence,
    pub streams: StreamSlots,
    /// Serializes "insert a post, then publish it", so ids reach the bus in order.
    pub post_writer: Arc<tokio::sync::Mutex<()>>,
    pub ingest: Arc<mastodon::ingest::IngestStatus>,
    pub metrics: Metrics,
    /// Ids of sessions that just logged out; their open streams end.
    pub logouts: tokio::sync::broadcast::Sender<String>,
    pub stream_options: StreamOptions,
    /// The newest post and mirror change this process knows of; see [`heads`].
    pub posts_head: Head,
    pub statuses_head: Head,
    /// Users by id, so a logged-in poll reads no row.
    pub users: Memo<i64, User>,
}

impl AppState {
    /// Connects to the database and the bus; `shutdown` ends streams when it turns true.
    pub async fn build(config: Config, shutdown: &watch::Sender<bool>) -> anyhow::Result<AppState> {
        let db = Db::connect(&config.database_url, config.db_connections).await?;
        let posts_head = posts::store::head(&db).await?;
        let statuses_head = mastodon::store::head(&db).await?;
        let posts_bus = Arc::new(bus(&config, "posts", posts_head).await?);
        let statuses_bus = Arc::new(bus(&config, "statuses", statuses_head).await?);

        let posts_head = Head::new(posts_head);
        let statuses_head = Head::new(statuses_head);
        heads::follow(
            posts_bus.clone(),
            posts::all_topic(),
            posts_head.clone(),
            shutdown.subscribe(),
        );
        heads::follow(
            statuses_bus.clone(),
            mastodon::ingest::statuses_topic(),
            statuses_head.clone(),
            shutdown.subscribe(),
        );
        heads::refresh(
            db.clone(),
            posts_head.clone(),
            |db| async move { posts::store::head(&db).await },
            shutdown.subscribe(),
        );
        heads::refresh(
            db.clone(),
            statuses_head.clone(),
            |db| async move { mastodon::store::head(&db).await },
            shutdown.subscribe(),
        );

        Ok(AppState {
            posts_bus,
            statuses_bus,
            posts_head,
            statuses_head,
            users: Memo::new(REMEMBERED, 100_000),
            presence: presence(&config).await?,
            streams: StreamSlots::new(config.max_streams),
            post_writer: Arc::default(),
            ingest: Arc::default(),
            metrics: Metrics::default(),
            logouts: tokio::sync::broadcast::channel(64).0,
            stream_options: StreamOptions {
                keep_alive: config.keep_alive(),
                retry: Duration::from_secs(2),
                shutdown: Some(shutdown.subscribe()),
            },
            config: Arc::new(config),
            db,
        })
    }
}

/// Runs only the Mastodon ingester, for deployments where several app instances share
/// one database and bus: exactly one process ingests, so no status is stored twice.
pub async fn run_ingester(mut config: Config) -> anyhow::Result<()> {
    config.no_ingest = false;
    let (shutdown, stopped) = watch::channel(false);
    let state = AppState::build(config, &shutdown).await?;
    tracing::info!("ingester starting");

    let mut ingest = tokio::spawn(mastodon::ingest::run(state, stopped));
    tokio::select! {
        () = shutdown_signal() => {
            let _ = shutdown.send(true);
            let _ = ingest.await;
        }
        finished = &mut ingest => finished.context("ingest task")?,
    }
    Ok(())
}

/// Counts open SSE streams against the configured limit.
#[derive(Clone, Default)]
pub struct StreamSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// An open stream's place; it frees itself when the stream ends.
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
}

impl StreamSlots {
    pub fn new(max: usize) -> Self {
        StreamSlots {
            open: Arc::default(),
            max,
        }
    }

    /// Takes a place for a new stream, or refuses when the server is full, so that a
    /// flood of streams meets a clear 503 instead of running out of file descriptors.
    pub fn acquire(&self) -> Result<StreamSlot, AppError> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(AppError::Unavailable(
                "too many open streams; try again shortly",
            ));
        }
        Ok(StreamSlot {
            open: self.open.clone(),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The whole app, for every route: each feature brings its own router.
pub fn router(state: AppState) -> Router {
    let sessions = CachedSessions::new(state.db.sessions.clone(), REMEMBERED);
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("switchyard_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::days(14),
        ));

    Router::new()
        .merge(pages::router())
        .merge(accounts::router())
        .merge(posts::router())
        .merge(mastodon::views::router())
        .merge(compare::router())
        .merge(hello::router())
        .merge(assets::router())
        .merge(metrics::router())
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(security::reject_cross_site_posts))
        .layer(session_layer)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("-", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route)
            }),
        )
        .with_state(state)
}

/// A built application: bound listener, state and background tasks.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Connects to the database, binds the listener and starts ingesting. Port 0 picks
    /// a free port, which is how tests run many apps at once.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // The port first: when it is taken, nothing else (a new SQLite file, say) should
        // have been made.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let (shutdown, _) = watch::channel(false);
        let state = AppState::build(config, &shutdown).await?;
        Ok(Application {
            listener,
            state,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |addr| addr.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the process gets Ctrl-C or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            shutdown,
        } = self;
        spawn_background(&state, shutdown.subscribe());

        let addr = listener.local_addr()?;
        tracing::info!(%addr, url = format!("http://{addr}/"), "switchyard listening");

        // Made into a service once: serving the router itself rebuilds its route table
        // for every connection, tens of KiB that an open stream would hold all its life.
        let app = router(state).into_make_service();
        let (stopped_tx, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            stop.await;
            let _ = shutdown.send(true);
            let _ = stopped_tx.send(());
        });

        // Streams end on shutdown by themselves; the deadline covers any connection
        // that does not, so the process always exits.
        tokio::select! {
            result = serve => result.context("serving"),
            () = async {
                let _ = stopped.await;
                tokio::time::sleep(SHUTDOWN_DEADLINE).await;
            } => {
                tracing::warn!(deadline_s = SHUTDOWN_DEADLINE.as_secs(), "shutdown deadline passed");
                Ok(())
            }
        }
    }
}

/// Presence of this process, shared with the others through Redis when configured.
/// Versions start from the clock so that they keep increasing across restarts.
async fn presence(config: &Config) -> anyhow::Result<Presence> {
    let start = crate::db::now_ms() as u64;
    let Some(url) = &config.redis_url else {
        return Ok(Presence::starting_at(start));
    };
    Presence::shared(url, &config.redis_prefix, start)
        .await
        .with_context(|| format!("connecting to Redis at {}", crate::db::redact(url)))
}

/// The bus of one sequence: in-process, or on Redis when configured.
async fn bus(config: &Config, sequence: &str, head: u64) -> anyhow::Result<Bus> {
    let Some(url) = &config.redis_url else {
        return Ok(Bus::memory(
            config.history,
            config.client_queue,
            EventId(head),
        ));
    };
    let redis_config = RedisBusConfig {
        prefix: format!("{}:{sequence}", config.redis_prefix),
        maxlen: config.history,
        queue: config.client_queue,
        ..RedisBusConfig::default()
    };
    let bus = RedisBus::connect(url, redis_config, EventId(head))
        .await
        .with_context(|| format!("connecting to Redis at {}", crate::db::redact(url)))?;
    Ok(Bus::Redis(bus))
}

fn spawn_background(state: &AppState, shutdown: watch::Receiver<bool>) {
    tokio::spawn(
        state
            .db
            .sessions
            .clone()
            .delete_expired_every(Duration::from_secs(300)),
    );

    let presence = state.presence.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            presence.expire_leases();
        }
    });

    if !state.config.no_ingest {
        tokio::spawn(mastodon::ingest::run(state.clone(), shutdown));
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
