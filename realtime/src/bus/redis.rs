//! The Redis Streams bus: several app instances share their events.
//!
//! Every topic is a stream (`{prefix}:t:{topic}`) trimmed to about `maxlen` entries;
//! each entry carries the event's cursor, name, data and publish time. One reader task
//! per process follows every topic that has a local subscriber with a blocking `XREAD`,
//! passing back the last entry ids it received, and fans entries out to local
//! subscribers. Browsers never get a Redis connection of their own.
//!
//! Publishing never fails the caller: while Redis is away, events wait in an in-memory
//! outbox, in order, and are written when it returns. The database stays the source of
//! truth for pages and polls, so the site keeps working; live streams catch up from the
//! streams once the reader reconnects.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::{Notify, broadcast};

use super::{BusEvent, EventId, Resume, Subscription, Topic};
use crate::redis_request::bounded;

/// How a Redis bus is set up.
#[derive(Clone, Debug)]
pub struct RedisBusConfig {
    /// Namespace of this bus's keys, e.g. `switchyard:posts`.
    pub prefix: String,
    /// Approximate entries kept per topic stream (`XADD … MAXLEN ~`).
    pub maxlen: usize,
    /// Events queued per local subscriber before it is reset.
    pub queue: usize,
    /// How long one `XREAD` blocks; also the longest a stopped reader takes to notice.
    pub block: Duration,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        RedisBusConfig {
            prefix: "switchyard".into(),
            maxlen: 1000,
            queue: 256,
            block: Duration::from_secs(2),
        }
    }
}

/// A bus on Redis Streams. Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisBusConfig,
    /// Commands other than the reader's blocking `XREAD`.
    conn: ConnectionManager,
    local: Mutex<HashMap<Topic, Local>>,
    outbox: Mutex<VecDeque<(Topic, BusEvent)>>,
    /// Wakes the reader when a topic gains its first local subscriber.
    wake: Notify,
    /// Wakes the outbox flusher after a failed publish.
    flush: Notify,
    /// A stream only this process reads, written to wake its blocked `XREAD`.
    wake_key: String,
    /// The newest id this process knows of, published, asked for or given at start.
    head: AtomicU64,
    /// The newest stream entry id the reader has seen on any stream. Entry ids follow
    /// the Redis server's clock on every stream, so this is where a topic whose own
    /// position cannot be read (Redis away) starts: anything added later is newer.
    last_seen: Mutex<String>,
}

struct Local {
    sender: broadcast::Sender<Arc<BusEvent>>,
    /// The id of the last entry delivered from the topic's stream.
    last_id: String,
}

impl RedisBus {
    /// Connects and starts the reader and the outbox flusher. `head` is the sequence's
    /// newest id at start: a Redis data set that begins now vouches only for later ids.
    pub async fn connect(
        url: &str,
        config: RedisBusConfig,
        head: EventId,
    ) -> redis::RedisResult<RedisBus> {
        let client = redis::Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_max_delay(Duration::from_secs(2));
        let conn =
            ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await?;

        // The reader's connection blocks in XREAD, so it is its own.
        let reader_config =
            manager_config.set_response_timeout(Some(config.block + Duration::from_secs(5)));
        let reader = ConnectionManager::new_with_config(client, reader_config).await?;

        let wake_key = format!("{}:wake:{:016x}", config.prefix, rand::random::<u64>());
        let bus = RedisBus {
            inner: Arc::new(Inner {
                config,
                conn,
                local: Mutex::default(),
                outbox: Mutex::default(),
                wake: Notify::new(),
                flush: Notify::new(),
                wake_key,
                head: AtomicU64::new(head.0),
                last_seen: Mutex::new("0-0".to_owned()),
            }),
        };
        bus.ensure_floor().await?;
        // The tasks live as long as the runtime; a process has one bus per sequence.
        tokio::spawn(read_loop(bus.inner.clone(), reader));
        tokio::spawn(flush_loop(bus.clone()));
        Ok(bus)
    }

    fn key(&self, topic: &Topic) -> String {
        format!("{}:t:{}", self.inner.config.prefix, topic.0)
    }

    fn floor_key(&self) -> String {
        format!("{}:floor", self.inner.config.prefix)
    }

    /// Records where this Redis data set's history starts, unless another process
    /// did first. Every stream of the bus holds all its events above the floor, except
    /// what trimming removed.
    async fn ensure_floor(&self) -> redis::RedisResult<Option<EventId>> {
        let mut conn = self.inner.conn.clone();
        let head = self.inner.head.load(Ordering::Acquire);
        let mut set = redis::cmd("SET");
        set.arg(self.floor_key()).arg(head).arg("NX");
        let set = set.query_async(&mut conn);
        let _: Option<String> = bounded(set).await?;
        let floor: Option<u64> = bounded(conn.get(self.floor_key())).await?;
        Ok(floor.map(EventId))
    }

    /// Appends the event to the topic's stream, or to the outbox while Redis is away.
    pub async fn publish(&self, topic: &Topic, event: BusEvent) {
        self.inner.head.fetch_max(event.id.0, Ordering::AcqRel);
        // Events queued earlier go first, so a topic's order is kept.
        let queued = !self.inner.lock_outbox().is_empty();
        if !queued {
            match self.xadd(topic, &event).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%topic, id = %event.id, %error, "publish queued: redis away");
                }
            }
        }
        self.inner.lock_outbox().push_back((topic.clone(), event));
        self.inner.flush.notify_one();
    }

    async fn xadd(&self, topic: &Topic, event: &BusEvent) -> redis::RedisResult<()> {
        let mut conn = self.inner.conn.clone();
        let mut add = redis::cmd("XADD");
        add.arg(self.key(topic))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.inner.config.maxlen)
            .arg("*")
            .arg("c")
            .arg(event.id.0)
            .arg("n")
            .arg(&event.name)
            .arg("d")
            .arg(&event.data)
            .arg("t")
            .arg(event.published_ms);
        let add = add.query_async::<String>(&mut conn);
        bounded(add).await?;
        Ok(())
    }

    /// Subscribes to a topic, resuming after `after` from the stream's history.
    pub async fn subscribe(
        &self,
        topic: &Topic,
        after: Option<EventId>,
        head: EventId,
    ) -> Subscription {
        let key = self.key(topic);
        self.inner.head.fetch_max(head.0, Ordering::AcqRel);

        // Listen first, then read the history: an event published in between is in
        // both, and the stream skips ids it has sent already.
        let (live, newly_active) = {
            let mut local = self.inner.lock_local();
            match local.get(topic) {
                Some(existing) if existing.sender.receiver_count() > 0 => {
                    (existing.sender.subscribe(), false)
                }
                _ => {
                    let (sender, receiver) = broadcast::channel(self.inner.config.queue.max(1));
                    local.insert(
                        topic.clone(),
                        Local {
                            sender,
                            last_id: String::new(),
                        },
                    );
                    (receiver, true)
                }
            }
        };
        if newly_active {
            let top = match self.top_id(&key).await {
                Ok(top) => top,
                Err(_) => self.inner.lock_last_seen().clone(),
            };
            if let Some(entry) = self.inner.lock_local().get_mut(topic) {
                entry.last_id = top;
            }
            // In the background: a page must not wait on Redis to start listening.
            let bus = self.clone();
            tokio::spawn(async move { bus.wake_reader().await });
        }

        let resume = match after {
            // At the database's head nothing can have been missed: no history needed,
            // which also keeps fresh pages live while Redis is away.
            None => Resume::Events(Vec::new()),
            Some(after) if after == head => Resume::Events(Vec::new()),
            Some(after) if after > head => Resume::Reset,
            Some(after) => self.history_after(&key, after).await,
        };
        Subscription {
            topic: topic.clone(),
            after,
            resume,
            live,
        }
    }

    /// The id of the newest entry, or `0-0` for an empty stream, where reading starts.
    async fn top_id(&self, key: &str) -> redis::RedisResult<String> {
        let mut conn = self.inner.conn.clone();
        let reply: StreamRangeReply = bounded(conn.xrevrange_count(key, "+", "-", 1)).await?;
        Ok(reply
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone()))
    }

    /// What came after `after`, if the stream still holds all of it.
    async fn history_after(&self, key: &str, after: EventId) -> Resume {
        let mut conn = self.inner.conn.clone();
        // Approximate trimming keeps up to a block (about 100 entries) more.
        let count = self.inner.config.maxlen + 256;
        let reply: redis::RedisResult<StreamRangeReply> =
            bounded(conn.xrevrange_count(key, "+", "-", count)).await;
        let Ok(reply) = reply else {
            // No history to be had: the client reloads from the database.
            return Resume::Reset;
        };

        let mut missed = Vec::new();
        let mut reached = false;
        for entry in &reply.ids {
            match decode(entry) {
                Some(event) if event.id > after => missed.push(Arc::new(event)),
                Some(_) => {
                    reached = true;
                    break;
                }
                None => {}
            }
        }

        // Without an entry at or below the resume point the stream may have been
        // trimmed past it, or emptied by a Redis restart; only an untrimmed stream that
        // holds everything since the start of its data set can vouch for the gap.
        if !reached && !self.complete_since(key, after).await {
            return Resume::Reset;
        }
        missed.reverse();
        Resume::Events(missed)
    }

    /// Whether the stream holds every event of its topic with an id above `after`:
    /// the resume point is at or above the data set's floor and nothing was trimmed.
    async fn complete_since(&self, key: &str, after: EventId) -> bool {
        // A missing floor means Redis lost its data: the floor starts again from here,
        // and older resume points are answered with a reset.
        match self.ensure_floor().await {
            Ok(Some(floor)) if after >= floor => {}
            _ => return false,
        }
        let mut conn = self.inner.conn.clone();
        let mut info = redis::cmd("XINFO");
        info.arg("STREAM").arg(key);
        let info = info.query_async::<Value>(&mut conn);
        let info = bounded(info).await;
        match info {
            // Trimming does not move max-deleted-entry-id; the count of entries ever
            // added does tell whether any have gone.
            Ok(value) => {
                let added = stream_field(&value, "entries-added");
                let length = stream_field(&value, "length");
                added.is_some() && added == length
            }
            // No stream: nothing was published to the topic in this data set.
            Err(error) => error.to_string().to_lowercase().contains("no such key"),
        }
    }

    async fn wake_reader(&self) {
        self.inner.wake.notify_one();
        let mut conn = self.inner.conn.clone();
        // The key is this process's alone; it expires after the process is gone.
        let mut woke = redis::pipe();
        woke.cmd("XADD")
            .arg(&self.inner.wake_key)
            .arg("MAXLEN")
            .arg(8)
            .arg("*")
            .arg("w")
            .arg(1)
            .ignore();
        woke.cmd("EXPIRE")
            .arg(&self.inner.wake_key)
            .arg(3600)
            .ignore();
        let woke = bounded(woke.query_async::<()>(&mut conn)).await;
        if let Err(error) = woke {
            tracing::debug!(%error, "waking the stream reader failed");
        }
    }

    /// Live subscribers on a topic in this process.
    pub fn subscribers(&self, topic: &Topic) -> usize {
        self.inner
            .lock_local()
            .get(topic)
            .map_or(0, |l| l.sender.receiver_count())
    }

    /// Events waiting for Redis to come back.
    pub fn queued(&self) -> usize {
        self.inner.lock_outbox().len()
    }
}

impl Inner {
    fn lock_local(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, Local>> {
        self.local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_last_seen(&self) -> std::sync::MutexGuard<'_, String> {
        self.last_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, VecDeque<(Topic, BusEvent)>> {
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn decode(entry: &StreamId) -> Option<BusEvent> {
    Some(BusEvent {
        id: EventId(entry.get::<u64>("c")?),
        name: entry.get("n")?,
        data: entry.get("d")?,
        published_ms: entry.get("t").unwrap_or_default(),
    })
}

/// A field of an `XINFO STREAM` reply, which is a flat list or a map by protocol.
fn stream_field(value: &Value, name: &str) -> Option<i64> {
    let pairs: Vec<(&Value, &Value)> = match value {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|p| Some((p.first()?, p.get(1)?)))
            .collect(),
        Value::Map(map) => map.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs.into_iter().find_map(|(key, val)| {
        let key: String = redis::from_redis_value_ref(key).ok()?;
        (key == name)
            .then(|| redis::from_redis_value_ref(val).ok())
            .flatten()
    })
}

/// Follows every locally watched topic and fans entries out.
async fn read_loop(inner: Arc<Inner>, mut conn: ConnectionManager) {
    let mut delay = Duration::from_millis(100);
    loop {
        let (keys, ids) = watched(&inner);
        if keys.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), inner.wake.notified()).await;
            continue;
        }

        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(512);
        cmd.arg("BLOCK").arg(inner.config.block.as_millis() as u64);
        cmd.arg("STREAMS")
            .arg(&keys)
            .arg(&inner.wake_key)
            .arg(&ids)
            .arg("$");
        let reply: redis::RedisResult<Option<StreamReadReply>> = cmd.query_async(&mut conn).await;

        match reply {
            Ok(reply) => {
                delay = Duration::from_millis(100);
                if let Some(reply) = reply {
                    fan_out(&inner, reply);
                }
            }
            Err(error) => {
                let retry_ms = delay.as_millis() as u64;
                tracing::warn!(%error, retry_ms, "stream reader lost redis");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// Keys and last ids of the topics with local subscribers; forgets the rest.
fn watched(inner: &Inner) -> (Vec<String>, Vec<String>) {
    let mut local = inner.lock_local();
    local.retain(|_, l| l.sender.receiver_count() > 0);
    local
        .iter()
        .filter(|(_, l)| !l.last_id.is_empty())
        .map(|(topic, l)| {
            (
                format!("{}:t:{}", inner.config.prefix, topic.0),
                l.last_id.clone(),
            )
        })
        .unzip()
}

fn fan_out(inner: &Inner, reply: StreamReadReply) {
    let prefix = format!("{}:t:", inner.config.prefix);
    if let Some(newest) = reply
        .keys
        .iter()
        .filter_map(|k| k.ids.last())
        .map(|e| &e.id)
        .max_by(|a, b| entry_order(a).cmp(&entry_order(b)))
    {
        let mut last_seen = inner.lock_last_seen();
        if entry_order(newest) > entry_order(&last_seen) {
            last_seen.clone_from(newest);
        }
    }
    let mut local = inner.lock_local();
    for stream in reply.keys {
        let Some(name) = stream.key.strip_prefix(&prefix) else {
            continue;
        };
        let Some(topic) = local.get_mut(&Topic::new(name)) else {
            continue;
        };
        for entry in &stream.ids {
            topic.last_id.clone_from(&entry.id);
            if let Some(event) = decode(entry) {
                // A full queue resets that subscriber; nobody else waits for it.
                let _ = topic.sender.send(Arc::new(event));
            }
        }
    }
}

/// A stream entry id (`ms-seq`) as numbers, for comparing ids of different streams.
fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Writes queued events once Redis is back, oldest first.
async fn flush_loop(bus: RedisBus) {
    let mut delay = Duration::from_millis(100);
    loop {
        let next = bus.inner.lock_outbox().front().cloned();
        let Some((topic, event)) = next else {
            let _ = tokio::time::timeout(Duration::from_secs(1), bus.inner.flush.notified()).await;
            continue;
        };

        match bus.xadd(&topic, &event).await {
            Ok(()) => {
                bus.inner.lock_outbox().pop_front();
                delay = Duration::from_millis(100);
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    }
}
