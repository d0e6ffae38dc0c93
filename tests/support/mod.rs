//! Starting the real app on port 0 against a fresh database, and talking to it like a
//! browser would: forms, cookies, polls and SSE streams read byte by byte.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use switchyard::{Application, Config};

pub mod sse;

pub use sse::SseClient;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite with the in-process bus.
    Sqlite,
    /// PostgreSQL with the in-process bus.
    Postgres,
    /// PostgreSQL with the Redis Streams bus, as several instances run.
    PostgresRedis,
}

/// Runs a test body once per database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Backend::Postgres).await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::support::Backend::PostgresRedis).await
                }
            )*
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis tests use, with keys under a prefix of their own.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database (and, with Redis, a key prefix) that exists for one test and is
/// removed afterwards.
pub struct TestDb {
    pub url: String,
    pub redis_prefix: Option<String>,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("switchyard.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    redis_prefix: None,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres | Backend::PostgresRedis => {
                let name = format!("switchyard_test_{}", rand::random::<u64>());
                let admin = postgres_admin_url();
                let mut conn = connect_admin(&admin).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("creating a test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                let redis_prefix =
                    (backend == Backend::PostgresRedis).then(|| format!("switchyard-test:{name}"));
                TestDb {
                    url: format!("{base}/{name}"),
                    redis_prefix,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

async fn connect_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see the README)")
}

impl TestDb {
    /// The same database and keys, owned by someone else: for a second instance.
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            pg_name: None,
            _dir: None,
        }
    }
}

fn delete_redis_keys(prefix: String) {
    let _ = std::thread::spawn(move || {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.pg_name.is_some()
            && let Some(prefix) = self.redis_prefix.take()
        {
            delete_redis_keys(prefix);
        }
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async; a short-lived runtime on its own thread removes the
        // database so no test leaves one behind.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let mut conn = connect_admin(&admin).await;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                });
            }
        })
        .join();
    }
}

/// A running app and the database under it.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub state: switchyard::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A configuration for tests: any free port, no Mastodon source, quick polls.
pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.database_url = db.url.clone();
    config.db_connections = 4;
    config.no_ingest = true;
    config.mastodon_instance = None;
    config.replay_file = None;
    config.poll_ms = 500;
    config.keep_alive_secs = 1;
    if let Some(prefix) = &db.redis_prefix {
        config.redis_url = Some(redis_url());
        config.redis_prefix = prefix.clone();
    }
    config
}

impl TestApp {
    pub async fn start(backend: Backend) -> TestApp {
        let db = TestDb::new(backend).await;
        let config = test_config(&db);
        TestApp::start_with(db, config).await
    }

    /// An app whose ingester replays `file` once, or the bundled recording in a loop
    /// when `None`, at `rate` statuses a second.
    pub async fn replaying(backend: Backend, rate: f64, file: Option<PathBuf>) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db);
        config.no_ingest = false;
        config.replay_once = file.is_some();
        config.replay_file = file;
        config.replay_rate = rate;
        TestApp::start_with(db, config).await
    }

    /// Waits until the ingester has stored `count` statuses.
    pub async fn wait_stored(&self, count: u64) {
        let state = self.state.clone();
        eventually(
            Duration::from_secs(10),
            &format!("{count} stored statuses"),
            || {
                let state = state.clone();
                async move { state.ingest.stored.load(Ordering::Relaxed) >= count }
            },
        )
        .await;
    }

    pub async fn start_with(db: TestDb, config: Config) -> TestApp {
        let app = Application::build(config).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app
                .run_until(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        TestApp {
            base,
            db,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and hands back the database, for a restart on the same data.
    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                redis_prefix: None,
                pg_name: None,
                _dir: None,
            },
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client with its own cookie jar.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.base.clone(),
        }
    }

    /// A new user, signed up and logged in, as a client.
    pub async fn user(&self, handle: &str) -> Client {
        let client = self.client();
        client.sign_up(handle).await;
        client
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    /// Signs up `handle` (email `handle@example.com`) through the form; the client is
    /// logged in afterwards.
    pub async fn sign_up(&self, handle: &str) {
        let response = self
            .post_form(
                "/accounts/signup",
                &[
                    ("email", &format!("{handle}@example.com")),
                    ("handle", handle),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            303,
            "sign-up of {handle} at {}",
            self.base
        );
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET")
    }

    pub async fn text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.text().await.expect("body")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    /// Posts as a logged-in user; returns the new post's id from the all-posts feed.
    pub async fn post(&self, body: &str) {
        let response = self.post_form("/posts/create/", &[("body", body)]).await;
        assert_eq!(response.status(), 303, "posting {body:?}");
    }

    /// Opens an SSE stream with optional `Last-Event-ID`.
    pub async fn stream(&self, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream request");
        assert_eq!(response.status(), 200, "stream {path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "stream {path} content type"
        );
        SseClient::new(response.bytes_stream().boxed())
    }
}

/// The `data-cursor` of a region's control in a page.
pub fn control_cursor(page: &str, region: &str) -> u64 {
    let id = format!(r#"id="{region}-ctl""#);
    let at = page
        .find(&id)
        .unwrap_or_else(|| panic!("no {region} control in page"));
    let rest = &page[at..];
    let key = r#"data-cursor=""#;
    let start = rest.find(key).expect("data-cursor") + key.len();
    let end = start + rest[start..].find('"').expect("closing quote");
    rest[start..end].parse().expect("numeric cursor")
}

/// Ids of `post-N` articles in a fragment, in document order.
pub fn post_ids(html: &str) -> Vec<u64> {
    html.match_indices(r#"id="post-"#)
        .filter_map(|(at, m)| {
            let rest = &html[at + m.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

/// Waits until `check` passes, polling it, or panics with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
