//! The results cache: encoded parts of range queries by key, in process
//! memory (least recently used out first, bounded in bytes) or in an
//! external Redis (by config). A cache that fails or does not answer in time
//! is a miss: queries are answered from storage all the same.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::ConnectionManager;

/// Where cached parts live.
pub enum ResultsCache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

impl ResultsCache {
    pub async fn get(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        match self {
            ResultsCache::Memory(m) => m.get(key),
            ResultsCache::Redis(r) => r.get(key).await.map(Arc::new),
        }
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) {
        match self {
            ResultsCache::Memory(m) => m.put(key, value),
            ResultsCache::Redis(r) => r.put(key, value).await,
        }
    }
}

/// An in-memory LRU bounded by the bytes of its keys and values.
pub struct MemoryCache {
    max_bytes: usize,
    state: Mutex<LruState>,
}

#[derive(Default)]
struct LruState {
    entries: HashMap<String, (Arc<Vec<u8>>, u64)>,
    /// Use tick → key, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

impl MemoryCache {
    pub fn new(max_bytes: usize) -> Self {
        MemoryCache {
            max_bytes,
            state: Mutex::new(LruState::default()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        let mut s = self.state.lock();
        s.tick += 1;
        let tick = s.tick;
        let (value, old_tick) = {
            let entry = s.entries.get_mut(key)?;
            let old = entry.1;
            entry.1 = tick;
            (entry.0.clone(), old)
        };
        s.order.remove(&old_tick);
        s.order.insert(tick, key.to_string());
        Some(value)
    }

    pub fn put(&self, key: &str, value: Vec<u8>) {
        let size = key.len() + value.len();
        if size > self.max_bytes {
            return;
        }
        let mut s = self.state.lock();
        if let Some((old, old_tick)) = s.entries.remove(key) {
            s.order.remove(&old_tick);
            s.bytes -= key.len() + old.len();
        }
        while s.bytes + size > self.max_bytes {
            let Some((_, oldest)) = s.order.pop_first() else {
                break;
            };
            if let Some((v, _)) = s.entries.remove(&oldest) {
                s.bytes -= oldest.len() + v.len();
            }
        }
        s.tick += 1;
        let tick = s.tick;
        s.order.insert(tick, key.to_string());
        s.entries.insert(key.to_string(), (Arc::new(value), tick));
        s.bytes += size;
    }

    /// Bytes held now (keys and values).
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

/// Parts kept in Redis under `o11ydb:qfe:<xxh3-128 of the key>`, each
/// with a time to live. The connection is made on first use and remade
/// after failures; every call is bounded by `timeout`, and after a failure
/// Redis is left alone for [`REDIS_RETRY_AFTER`] (every call a miss), so a
/// dead cache costs queries nothing.
pub struct RedisCache {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    timeout: Duration,
    ttl: Duration,
    /// Set while Redis failed lately: calls are skipped until then.
    down_until: Mutex<Option<Instant>>,
}

/// How long Redis is not asked again after a failed call.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);

impl RedisCache {
    pub fn new(url: &str, timeout: Duration, ttl: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("query_frontend.results_cache_redis_url {url:?}: {e}"))?;
        Ok(RedisCache {
            client,
            connection: tokio::sync::Mutex::new(None),
            timeout,
            ttl,
            down_until: Mutex::new(None),
        })
    }

    fn redis_key(key: &str) -> String {
        format!(
            "o11ydb:qfe:{:032x}",
            xxhash_rust::xxh3::xxh3_128(key.as_bytes())
        )
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let c = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| e.to_string())?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let was_down = match *self.down_until.lock() {
            Some(until) if Instant::now() < until => return None,
            Some(_) => true,
            None => false,
        };
        let attempt = async {
            let mut c = self.connection().await?;
            cmd.query_async::<T>(&mut c)
                .await
                .map_err(|e| e.to_string())
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        match result {
            Ok(v) => {
                if was_down {
                    tracing::info!("results cache: Redis answers again");
                    *self.down_until.lock() = None;
                }
                Some(v)
            }
            Err(e) => {
                if !was_down {
                    tracing::warn!(
                        "results cache: Redis failed ({e}); answering without it, retrying in {REDIS_RETRY_AFTER:?}"
                    );
                }
                *self.down_until.lock() = Some(Instant::now() + REDIS_RETRY_AFTER);
                None
            }
        }
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(Self::redis_key(key));
        self.call::<Option<Vec<u8>>>(cmd).await.flatten()
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(Self::redis_key(key))
            .arg(value)
            .arg("PX")
            .arg(self.ttl.as_millis().max(1) as u64);
        let _: Option<()> = self.call(cmd).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_least_recently_used_within_its_bytes() {
        let cache = MemoryCache::new(30);
        cache.put("a", vec![0; 9]);
        cache.put("b", vec![0; 9]);
        cache.put("c", vec![0; 9]);
        assert_eq!(cache.bytes(), 30);
        assert!(cache.get("a").is_some()); // a is now the most recent
        cache.put("d", vec![0; 9]);
        assert!(cache.get("b").is_none(), "b was least recently used");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        assert!(cache.get("d").is_some());
        cache.put("d", vec![1; 4]);
        assert_eq!(cache.bytes(), 25);
        assert_eq!(*cache.get("d").unwrap(), vec![1; 4]);
        cache.put("huge", vec![0; 100]);
        assert!(cache.get("huge").is_none(), "larger than the whole cache");
    }
}
