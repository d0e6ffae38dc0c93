//! Who is online: a user is online while at least one of their live connections is
//! open, or while a poll lease they renewed has not run out.
//!
//! Each process counts its own connections. Shared through Redis, every process also
//! keeps its online users in one sorted set (member `instance<TAB>user`, scored by
//! an expiry a few seconds ahead, renewed while they stay), announces each change on
//! a small stream, and reads the whole set to render the list. A user with tabs on
//! two instances stays online until the last one closes; a crashed instance's users
//! expire on their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamReadReply;
use tokio::sync::{mpsc, watch};

use crate::redis_request::bounded;

/// How long a shared entry lives without renewal, and how often it is renewed.
const SHARED_TTL: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);
const KEYS_OUTLIVE: Duration = Duration::from_secs(600);

#[derive(Default)]
struct Entry {
    streams: usize,
    lease_until: Option<Instant>,
}

impl Entry {
    fn online(&self, now: Instant) -> bool {
        self.streams > 0 || self.lease_until.is_some_and(|until| until > now)
    }
}

/// Presence of users by name. Cloning shares the same state.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    /// Bumped on every online/offline change; watchers render the list again.
    version: Arc<watch::Sender<u64>>,
    shared: Option<Arc<Shared>>,
}

/// The Redis side of presence.
struct Shared {
    conn: ConnectionManager,
    /// The sorted set of everyone online, on every instance.
    set_key: String,
    /// The stream that announces changes to every instance.
    changes_key: String,
    instance: String,
    /// Local changes, written to Redis in the order they happened.
    flips: mpsc::UnboundedSender<(String, bool)>,
}

/// Keeps a user online while it lives; dropped when their stream closes.
pub struct PresenceGuard {
    presence: Presence,
    user: String,
}

impl Default for Presence {
    fn default() -> Self {
        Presence {
            inner: Arc::default(),
            version: Arc::new(watch::channel(0).0),
            shared: None,
        }
    }
}

impl Presence {
    /// Presence whose change counter starts at `version`. Starting from the clock
    /// keeps versions increasing across restarts, so clients can compare them.
    pub fn starting_at(version: u64) -> Self {
        Presence {
            inner: Arc::default(),
            version: Arc::new(watch::channel(version).0),
            shared: None,
        }
    }

    /// Presence shared with every instance using the same Redis and `prefix`.
    pub async fn shared(url: &str, prefix: &str, version: u64) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        let listener = ConnectionManager::new_with_config(client, config).await?;

        let (flips, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            conn,
            set_key: format!("{prefix}:presence"),
            changes_key: format!("{prefix}:presence:changes"),
            instance: format!("{:016x}", rand::random::<u64>()),
            flips,
        });
        let presence = Presence {
            inner: Arc::default(),
            version: Arc::new(watch::channel(version).0),
            shared: Some(shared.clone()),
        };
        tokio::spawn(write_flips(shared.clone(), queued));
        tokio::spawn(renew(presence.clone(), shared.clone()));
        tokio::spawn(listen(presence.version.clone(), shared, listener));
        Ok(presence)
    }

    /// Counts a new live connection of `user`.
    pub fn connect(&self, user: &str) -> PresenceGuard {
        self.change(user, |entry| entry.streams += 1);
        PresenceGuard {
            presence: self.clone(),
            user: user.to_owned(),
        }
    }

    /// Keeps a polling `user` online for `ttl` from now.
    pub fn touch(&self, user: &str, ttl: Duration) {
        self.change(user, |entry| entry.lease_until = Some(Instant::now() + ttl));
    }

    /// Users online now on every instance, sorted by name. Falls back to this
    /// process's own users while Redis is away.
    pub async fn online(&self) -> Vec<String> {
        let Some(shared) = &self.shared else {
            return self.online_here();
        };
        match shared.elsewhere().await {
            Ok(mut users) => {
                users.extend(self.online_here());
                users.sort();
                users.dedup();
                users
            }
            Err(error) => {
                tracing::warn!(%error, "presence from this instance only: redis away");
                self.online_here()
            }
        }
    }

    /// Users online through this process, sorted by name.
    pub fn online_here(&self) -> Vec<String> {
        let now = Instant::now();
        let mut users: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, entry)| entry.online(now))
            .map(|(user, _)| user.clone())
            .collect();
        users.sort();
        users
    }

    pub fn is_online_here(&self, user: &str) -> bool {
        self.lock()
            .get(user)
            .is_some_and(|entry| entry.online(Instant::now()))
    }

    /// The change counter; it moves whenever someone comes or goes.
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Ends expired poll leases; call it periodically.
    pub fn expire_leases(&self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        {
            let mut entries = self.lock();
            entries.retain(|user, entry| {
                if entry.lease_until.is_some_and(|until| until <= now) {
                    entry.lease_until = None;
                    if entry.streams == 0 {
                        gone.push(user.clone());
                    }
                }
                entry.streams > 0 || entry.lease_until.is_some()
            });
        }
        if !gone.is_empty() {
            self.version.send_modify(|v| *v += 1);
            if let Some(shared) = &self.shared {
                for user in gone {
                    let _ = shared.flips.send((user, false));
                }
            }
        }
    }

    fn change(&self, user: &str, apply: impl FnOnce(&mut Entry)) {
        let now = Instant::now();
        let flipped: Option<bool> = {
            let mut entries = self.lock();
            let entry = entries.entry(user.to_owned()).or_default();
            let before = entry.online(now);
            apply(entry);
            let after = entry.online(now);
            if !after {
                entries.remove(user);
            }
            (before != after).then_some(after)
        };
        if let Some(online) = flipped {
            self.version.send_modify(|v| *v += 1);
            if let Some(shared) = &self.shared {
                let _ = shared.flips.send((user.to_owned(), online));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shared {
    fn member(&self, user: &str) -> String {
        format!("{}\t{user}", self.instance)
    }

    /// Users online through the other instances.
    async fn elsewhere(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.conn.clone();
        let now = now_ms();
        let mut range = redis::cmd("ZRANGEBYSCORE");
        range.arg(&self.set_key).arg(now).arg("+inf");
        let members: Vec<String> = bounded(range.query_async(&mut conn)).await?;
        // This instance's own entries may lag its changes by a moment; local counts
        // are the truth for them.
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let (instance, user) = m.split_once('\t')?;
                (instance != self.instance).then(|| user.to_owned())
            })
            .collect())
    }

    /// Both keys outlive every instance that uses them by a while, then go: a deployment
    /// (or a test) that is gone leaves nothing behind in Redis.
    fn expire_keys(&self, pipe: &mut redis::Pipeline) {
        let seconds = KEYS_OUTLIVE.as_secs();
        pipe.cmd("EXPIRE").arg(&self.set_key).arg(seconds).ignore();
        pipe.cmd("EXPIRE")
            .arg(&self.changes_key)
            .arg(seconds)
            .ignore();
    }

    /// Writes one change and tells the other instances.
    async fn write(&self, user: &str, online: bool) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let mut change = redis::pipe();
        if online {
            let expiry = now_ms() + SHARED_TTL.as_millis() as u64;
            change
                .cmd("ZADD")
                .arg(&self.set_key)
                .arg(expiry)
                .arg(self.member(user));
        } else {
            change.cmd("ZREM").arg(&self.set_key).arg(self.member(user));
        }
        change
            .cmd("XADD")
            .arg(&self.changes_key)
            .arg("MAXLEN")
            .arg("~")
            .arg(100)
            .arg("*")
            .arg("u")
            .arg(user)
            .arg("i")
            .arg(&self.instance);
        self.expire_keys(&mut change);
        bounded(change.query_async::<()>(&mut conn)).await
    }
}

async fn write_flips(shared: Arc<Shared>, mut flips: mpsc::UnboundedReceiver<(String, bool)>) {
    while let Some((user, online)) = flips.recv().await {
        if let Err(error) = shared.write(&user, online).await {
            // The renewal below puts online users back once Redis answers again.
            tracing::warn!(%error, %user, online, "presence change not shared");
        }
    }
}

/// Renews this instance's users and clears everyone's expired entries.
async fn renew(presence: Presence, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    let mut last_seen: Option<Vec<String>> = None;
    loop {
        tick.tick().await;
        let expiry = now_ms() + SHARED_TTL.as_millis() as u64;
        let mut conn = shared.conn.clone();
        let mut renewal = redis::pipe();
        for user in presence.online_here() {
            renewal
                .cmd("ZADD")
                .arg(&shared.set_key)
                .arg(expiry)
                .arg(shared.member(&user));
        }
        renewal
            .cmd("ZREMRANGEBYSCORE")
            .arg(&shared.set_key)
            .arg("-inf")
            .arg(now_ms());
        shared.expire_keys(&mut renewal);
        if let Err(error) = bounded(renewal.query_async::<()>(&mut conn)).await {
            tracing::debug!(%error, "presence renewal failed");
            continue;
        }

        // Users of a vanished instance expire without an announcement; notice here.
        if let Ok(mut elsewhere) = shared.elsewhere().await {
            elsewhere.sort();
            elsewhere.dedup();
            if last_seen.as_ref().is_some_and(|seen| *seen != elsewhere) {
                presence.version.send_modify(|v| *v += 1);
            }
            last_seen = Some(elsewhere);
        }
    }
}

/// Bumps the local version whenever any instance announces a change.
async fn listen(
    version: Arc<watch::Sender<u64>>,
    shared: Arc<Shared>,
    mut conn: ConnectionManager,
) {
    let mut last_id = "$".to_owned();
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT").arg(100).arg("BLOCK").arg(2000);
        read.arg("STREAMS").arg(&shared.changes_key).arg(&last_id);
        match read.query_async::<Option<StreamReadReply>>(&mut conn).await {
            Ok(Some(reply)) => {
                let entries: Vec<_> = reply.keys.iter().flat_map(|k| &k.ids).collect();
                if let Some(newest) = entries.last() {
                    last_id.clone_from(&newest.id);
                }
                // This instance's own changes bumped the version when they happened.
                let from_elsewhere = entries
                    .iter()
                    .any(|e| e.get::<String>("i").as_deref() != Some(&shared.instance));
                if from_elsewhere {
                    version.send_modify(|v| *v += 1);
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "presence listener lost redis");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.presence.change(&self.user, |entry| {
            entry.streams = entry.streams.saturating_sub(1)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_the_last_connection_closes() {
        let presence = Presence::default();
        let first = presence.connect("ada");
        let second = presence.connect("ada");
        let v0 = presence.version();

        drop(first);
        assert!(presence.is_online_here("ada"));
        assert_eq!(presence.version(), v0, "no change while a tab stays open");

        drop(second);
        assert!(!presence.is_online_here("ada"));
        assert!(presence.version() > v0);
    }

    #[test]
    fn poll_leases_expire() {
        let presence = Presence::default();
        presence.touch("bo", Duration::ZERO);
        presence.expire_leases();
        assert_eq!(presence.online_here(), Vec::<String>::new());

        presence.touch("bo", Duration::from_secs(60));
        assert_eq!(presence.online_here(), ["bo"]);
    }
}
