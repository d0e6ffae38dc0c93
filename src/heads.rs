//! The newest id of each sequence as this process last saw it, so that a poll with
//! nothing new is answered from memory: at one poll a second per client, asking the
//! database "anything after N?" would be most of what the database does.
//!
//! The bus tells every instance of each new id as it is published (the ingester's and
//! other instances' too, through Redis), and a slow re-read of the database covers a bus
//! that was down. A head that lags only makes one poll answer "nothing new" where the
//! next one brings the item; it never loses an item, since polls that are behind it still
//! read the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use realtime::{Bus, EventId, Topic};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::db::Db;

/// How often the database is asked for the heads regardless of the bus.
const REFRESH: Duration = Duration::from_secs(2);

/// One sequence's newest id seen by this process.
#[derive(Clone, Debug, Default)]
pub struct Head(Arc<AtomicU64>);

impl Head {
    pub fn new(id: u64) -> Head {
        Head(Arc::new(AtomicU64::new(id)))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves the head forward to `id`; an older id changes nothing.
    pub fn raise(&self, id: u64) {
        self.0.fetch_max(id, Ordering::AcqRel);
    }

    /// True when a poll at `after` certainly has nothing new: it is at the newest id
    /// this process knows of.
    pub fn is_at(&self, after: u64) -> bool {
        after == self.get()
    }
}

/// Raises `head` with every event on `topic` until shutdown.
pub fn follow(bus: Arc<Bus>, topic: Topic, head: Head, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut sub = bus.subscribe(&topic, None, EventId(head.get())).await;
        loop {
            tokio::select! {
                event = sub.live.recv() => match event {
                    Ok(event) => head.raise(event.id.0),
                    // Missed events only mean an older head; the next one raises it.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Re-reads a head from the database every [`REFRESH`] until shutdown.
pub fn refresh<F, Fut>(db: Db, head: Head, read: F, mut shutdown: watch::Receiver<bool>)
where
    F: Fn(Db) -> Fut + Send + 'static,
    Fut: Future<Output = sqlx::Result<u64>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = ticks.tick() => match read(db.clone()).await {
                    Ok(id) => head.raise(id),
                    Err(error) => tracing::warn!(%error, "reading a sequence head failed"),
                },
                _ = shutdown.changed() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_only_moves_forward() {
        let head = Head::new(5);
        head.raise(3);
        assert!(head.is_at(5));
        head.raise(9);
        assert!(head.is_at(9) && !head.is_at(5));
    }
}
