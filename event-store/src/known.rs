//! What this process last wrote to (or read from) each key of a read
//! model's bucket, with its revision: a projector that is the only writer
//! (the pinned replica) can then update a key with compare-and-set without
//! reading it first. A guess, never trusted: a revision that moved on (a
//! rebuild, another replica) fails the compare-and-set, and the key is read
//! again.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use lru::LruCache;

/// Keys remembered per bucket; a checkout's view is a few kilobytes.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(8_192).expect("not zero");

/// Cheap to clone; shared by every write to one bucket.
#[derive(Clone)]
pub struct Known(Arc<Mutex<LruCache<String, (u64, Bytes)>>>);

impl Default for Known {
    fn default() -> Self {
        Known(Arc::new(Mutex::new(LruCache::new(CAPACITY))))
    }
}

impl Known {
    /// The revision and value last seen for `key`.
    pub fn get(&self, key: &str) -> Option<(u64, Bytes)> {
        self.lock().get(key).cloned()
    }

    pub fn remember(&self, key: &str, revision: u64, value: Bytes) {
        self.lock().put(key.to_owned(), (revision, value));
    }

    pub fn forget(&self, key: &str) {
        self.lock().pop(key);
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, (u64, Bytes)>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
