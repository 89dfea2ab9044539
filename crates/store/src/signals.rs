//! What a store keeps in memory about commits: the event feed readers wait on, and the cache of
//! token lookups that authentication reads on every request. Both follow this store's own commits
//! at once and, on Postgres, other replicas' commits through `LISTEN` (see
//! `postgres::listen_for_commits`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::model::TokenInfo;
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

/// Most tokens a cache holds before it starts over: a bound on memory, far above any real
/// number of API tokens.
const MAX_CACHED_TOKENS: usize = 10_000;

/// Token lookups by secret hash, so a request is authenticated without a database read.
///
/// Emptied by every token write of this store and, where other replicas share the database, by
/// their notifications; while no notification can be heard (the listener is down) it answers
/// nothing, so a revocation elsewhere is never missed. A lookup that raced with a write is not
/// kept: [`TokenCache::keep`] takes the generation read before the lookup.
#[derive(Debug)]
pub(crate) struct TokenCache {
    inner: Mutex<Cached>,
    /// Whether every write that could change a cached answer is heard.
    trusted: AtomicBool,
}

#[derive(Debug, Default)]
struct Cached {
    generation: u64,
    tokens: HashMap<String, TokenInfo>,
}

impl TokenCache {
    /// `trusted` when nothing but this store writes tokens (SQLite: one server owns the file,
    /// and `ferry token create` only adds).
    pub(crate) fn new(trusted: bool) -> Self {
        TokenCache {
            inner: Mutex::default(),
            trusted: AtomicBool::new(trusted),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached token of `secret_hash`, or the generation to pass to [`TokenCache::keep`]
    /// after reading the database. Unknown hashes are not cached: a token created by another
    /// process (`ferry token create`) must work at once.
    pub(crate) fn get(&self, secret_hash: &str) -> Result<TokenInfo, u64> {
        let cached = self.lock();
        match cached.tokens.get(secret_hash) {
            Some(answer) if self.trusted.load(Ordering::Acquire) => Ok(answer.clone()),
            _ => Err(cached.generation),
        }
    }

    /// Keeps what the database answered for `secret_hash`, unless a write was heard since
    /// `generation` was read.
    pub(crate) fn keep(&self, generation: u64, secret_hash: &str, token: TokenInfo) {
        let mut cached = self.lock();
        if cached.generation != generation || !self.trusted.load(Ordering::Acquire) {
            return;
        }
        if cached.tokens.len() >= MAX_CACHED_TOKENS {
            cached.tokens.clear();
        }
        cached.tokens.insert(secret_hash.to_owned(), token);
    }

    /// Forgets every answer: a token was written.
    pub(crate) fn forget(&self) {
        let mut cached = self.lock();
        cached.generation = cached.generation.wrapping_add(1);
        cached.tokens.clear();
    }

    /// Whether other replicas' writes are heard from now on; either way what was cached is
    /// forgotten, since writes may have gone unheard.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> TokenInfo {
        TokenInfo {
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
        let cache = TokenCache::new(true);
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
        let cache = TokenCache::new(false);
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
