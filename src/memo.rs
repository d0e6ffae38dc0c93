//! A small map whose entries are trusted for a fixed time: the session and the user
//! behind a cookie, which every poll of a logged-in page would otherwise read from the
//! database.
//!
//! The price is staleness across instances: a session deleted by another instance (a
//! log-out there) is still honoured here until its entry ages out. This instance's own
//! deletions take effect at once.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct Memo<K, V> {
    entries: Arc<Mutex<HashMap<K, (V, Instant)>>>,
    fresh_for: Duration,
    capacity: usize,
}

impl<K, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Memo {
            entries: self.entries.clone(),
            fresh_for: self.fresh_for,
            capacity: self.capacity,
        }
    }
}

impl<K, V> fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("fresh_for", &self.fresh_for)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// Entries are trusted for `fresh_for`; past `capacity` the stale ones go, and if
    /// that is not enough, all of them (a burst of new sessions only costs reads).
    pub fn new(fresh_for: Duration, capacity: usize) -> Self {
        Memo {
            entries: Arc::default(),
            fresh_for,
            capacity,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, stored) = entries.get(key)?;
        (stored.elapsed() < self.fresh_for).then(|| value.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (_, stored)| stored.elapsed() < self.fresh_for);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    pub fn remove(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_age_out_and_removals_are_immediate() {
        let memo = Memo::new(Duration::from_millis(50), 10);
        memo.insert(1, "a");
        memo.insert(2, "b");
        memo.remove(&2);
        assert_eq!((memo.get(&1), memo.get(&2)), (Some("a"), None));

        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(memo.get(&1), None);
    }

    #[test]
    fn a_full_memo_makes_room() {
        let memo = Memo::new(Duration::from_secs(60), 2);
        memo.insert(1, 1);
        memo.insert(2, 2);
        memo.insert(3, 3);
        assert_eq!(memo.get(&3), Some(3));
        assert!(memo.get(&1).is_none() && memo.get(&2).is_none());
    }
}
