//! What a store keeps in memory about commits: the event feed readers wait on, and the caches of
//! reads made on nearly every request (token lookups, the list of clusters). All follow this
//! store's own commits at once and, on Postgres, other replicas' commits through `LISTEN` (see
//! `postgres::listen_for_commits`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Moves after each commit that wrote job events (see [`crate::Store::event_feed`]).
#[derive(Debug)]
pub(crate) struct EventSignal(watch::Sender<u64>);

impl EventSignal {
    pub(crate) fn new() -> Self {
        EventSignal(watch::Sender::new(0))
    }

    pub(crate) fn moved(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Most tokens a store's cache holds: far above any real number of API tokens.
pub(crate) const CACHED_TOKENS: usize = 10_000;
/// Most pages of the cluster list a store's cache holds: a page can hold 1,000 clusters.
pub(crate) const CACHED_CLUSTER_PAGES: usize = 64;

/// Answers of one kind of read, by key, kept until a commit changes what they read.
///
/// Emptied by every write of this store to what they read and, where other replicas share the
/// database, by their notifications; while no notification can be heard (the listener is down)
/// it answers nothing, so a change elsewhere (a token revoked) is never missed. An answer read
/// while a write landed is not kept: [`CommitCache::keep`] takes the generation read before the
/// read.
#[derive(Debug)]
pub(crate) struct CommitCache<V> {
    inner: Mutex<Cached<V>>,
    /// Whether every write that could change a cached answer is heard.
    trusted: AtomicBool,
    /// Most answers kept before the cache starts over: a bound on memory.
    capacity: usize,
}

#[derive(Debug)]
struct Cached<V> {
    generation: u64,
    answers: HashMap<String, V>,
}

/// Token lookups by secret hash, so a request is authenticated without a database read. Unknown
/// hashes are not kept: a token created by another process (`ferry token create`) must work at
/// once.
pub(crate) type TokenCache = CommitCache<ferry_core::model::TokenInfo>;

/// Pages of the cluster list by `limit/after`: what dashboards and pipelines poll.
pub(crate) type ClusterListCache = CommitCache<Vec<ferry_core::model::Cluster>>;

impl<V: Clone> CommitCache<V> {
    /// `trusted` when nothing but this store writes what the answers read (SQLite: one server
    /// owns the file, and `ferry token create` only adds tokens).
    pub(crate) fn new(trusted: bool, capacity: usize) -> Self {
        CommitCache {
            inner: Mutex::new(Cached {
                generation: 0,
                answers: HashMap::new(),
            }),
            trusted: AtomicBool::new(trusted),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached answer for `key`, or the generation to pass to [`CommitCache::keep`] after
    /// reading the database.
    pub(crate) fn get(&self, key: &str) -> Result<V, u64> {
        let cached = self.lock();
        match cached.answers.get(key) {
            Some(answer) if self.trusted.load(Ordering::Acquire) => Ok(answer.clone()),
            _ => Err(cached.generation),
        }
    }

    /// Keeps what the database answered for `key`, unless a write was heard since `generation`
    /// was read.
    pub(crate) fn keep(&self, generation: u64, key: &str, answer: V) {
        let mut cached = self.lock();
        if cached.generation != generation || !self.trusted.load(Ordering::Acquire) {
            return;
        }
        if cached.answers.len() >= self.capacity {
            cached.answers.clear();
        }
        cached.answers.insert(key.to_owned(), answer);
    }

    /// Forgets every answer when the guard is dropped: made just before a writing transaction
    /// commits, so the answers are forgotten after the commit, and also when the caller stops
    /// waiting for it (the commit may have landed all the same).
    pub(crate) fn forget_after(&self) -> ForgetOnDrop<'_, V> {
        ForgetOnDrop(self)
    }

    /// Forgets every answer: what they read was written.
    pub(crate) fn forget(&self) {
        let mut cached = self.lock();
        cached.generation = cached.generation.wrapping_add(1);
        cached.answers.clear();
    }

    /// Whether other replicas' writes are heard from now on; either way what was cached is
    /// forgotten, since writes may have gone unheard.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
        self.forget();
    }
}

/// See [`CommitCache::forget_after`].
pub(crate) struct ForgetOnDrop<'a, V: Clone>(&'a CommitCache<V>);

impl<V: Clone> Drop for ForgetOnDrop<'_, V> {
    fn drop(&mut self) {
        self.0.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> ferry_core::model::TokenInfo {
        ferry_core::model::TokenInfo {
            id: uuid::Uuid::now_v7(),
            name: name.into(),
            role: ferry_core::model::Role::Viewer,
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_write_heard_during_a_lookup_keeps_its_answer_out() {
        let cache = TokenCache::new(true, 10);
        let generation = cache.get("h").unwrap_err();
        cache.forget();
        cache.keep(generation, "h", token("a"));
        assert!(cache.get("h").is_err(), "the stale answer was kept");
        let generation = cache.get("h").unwrap_err();
        cache.keep(generation, "h", token("a"));
        assert_eq!(cache.get("h").unwrap().name, "a");
        cache.forget();
        assert!(cache.get("h").is_err());
    }

    #[test]
    fn an_untrusted_cache_answers_nothing() {
        let cache = TokenCache::new(false, 10);
        let generation = cache.get("h").unwrap_err();
        cache.keep(generation, "h", token("a"));
        assert!(cache.get("h").is_err());
        cache.set_trusted(true);
        let generation = cache.get("h").unwrap_err();
        cache.keep(generation, "h", token("a"));
        assert_eq!(cache.get("h").unwrap().name, "a");
        cache.set_trusted(false);
        assert!(cache.get("h").is_err());
    }
}
