//! Who is online: a user is online while at least one of their live connections is
//! open, or while a poll lease they renewed has not run out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
        }
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

    /// Users online now, sorted by name.
    pub fn online(&self) -> Vec<String> {
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

    pub fn is_online(&self, user: &str) -> bool {
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
        let mut changed = false;
        {
            let mut entries = self.lock();
            entries.retain(|_, entry| {
                if entry.lease_until.is_some_and(|until| until <= now) {
                    entry.lease_until = None;
                    changed |= entry.streams == 0;
                }
                entry.streams > 0 || entry.lease_until.is_some()
            });
        }
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
    }

    fn change(&self, user: &str, apply: impl FnOnce(&mut Entry)) {
        let now = Instant::now();
        let flipped = {
            let mut entries = self.lock();
            let entry = entries.entry(user.to_owned()).or_default();
            let before = entry.online(now);
            apply(entry);
            let after = entry.online(now);
            if !after {
                entries.remove(user);
            }
            before != after
        };
        if flipped {
            self.version.send_modify(|v| *v += 1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
        assert!(presence.is_online("ada"));
        assert_eq!(presence.version(), v0, "no change while a tab stays open");

        drop(second);
        assert!(!presence.is_online("ada"));
        assert!(presence.version() > v0);
    }

    #[test]
    fn poll_leases_expire() {
        let presence = Presence::default();
        presence.touch("bo", Duration::ZERO);
        presence.expire_leases();
        assert_eq!(presence.online(), Vec::<String>::new());

        presence.touch("bo", Duration::from_secs(60));
        assert_eq!(presence.online(), ["bo"]);
    }
}
