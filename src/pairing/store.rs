//! Durable pairing store: one JSON document (`<stateDir>/pairing/pairing.json`),
//! kept in memory and rewritten atomically (temp → fsync → rename → fsync dir)
//! after every change, so `kill -9` at any moment leaves either the previous or
//! the new complete document (docs/decisions/0012-pairing-store.md).
//!
//! Invariants: one gateway owns a state dir (an exclusive file lock); writes are
//! serialised and each writes a snapshot taken after acquiring the write lock, so
//! a newer state is never overwritten by an older one; a corrupt file is an
//! error naming the file, never a silent reset.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use super::machine::Entropy;
use super::types::PairingData;
use crate::state::{write_atomic, SECRET_FILE_MODE};

/// Schema version of `pairing.json`.
pub const STORE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({why}); restore it from a backup or move it aside to start with no pairings")]
    Corrupt { path: PathBuf, why: String },
    #[error("another clawgate gateway already uses the state dir {0} (stop it, or set OPENCLAW_STATE_DIR)")]
    Locked(PathBuf),
}

/// Fresh request ids (UUIDs) and 256-bit tokens from the OS RNG.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn request_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    fn token(&mut self) -> String {
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    }
}

pub struct Store {
    path: PathBuf,
    data: Mutex<PairingData>,
    write: tokio::sync::Mutex<()>,
    /// Completed writes of the document (observability; tests pin RL-5 with it).
    writes: AtomicU64,
    _lock: File,
}

impl Store {
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("pairing").join("pairing.json")
    }

    /// Opens (or creates) the store and takes the state-dir lock.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = Self::file(state_dir);
        let dir = path.parent().unwrap_or(state_dir).to_path_buf();
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        crate::state::ensure_dir(&dir).map_err(io(&dir))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(state_dir.to_path_buf()));
        }
        let data = match crate::state::read_optional(&path).map_err(io(&path))? {
            None => PairingData {
                version: STORE_VERSION,
                ..Default::default()
            },
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                why: e.to_string(),
            })?,
        };
        Ok(Store {
            path,
            data: Mutex::new(data),
            write: tokio::sync::Mutex::new(()),
            writes: AtomicU64::new(0),
            _lock: lock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, PairingData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the current state.
    pub fn read<R>(&self, f: impl FnOnce(&PairingData) -> R) -> R {
        f(&self.lock())
    }

    /// Mutates without persisting (bookkeeping such as pruning on read).
    pub fn touch<R>(&self, f: impl FnOnce(&mut PairingData) -> R) -> R {
        f(&mut self.lock())
    }

    /// Mutates, then persists durably before returning.
    pub async fn update<R>(&self, f: impl FnOnce(&mut PairingData) -> R) -> Result<R, StoreError> {
        let r = f(&mut self.lock());
        self.persist().await?;
        Ok(r)
    }

    /// Mutates, and persists only when `f` succeeds: a refused change (the pending-request
    /// cap, threats.md RL-5) never rewrites or fsyncs the store.
    pub async fn try_update<R, E>(
        &self,
        f: impl FnOnce(&mut PairingData) -> Result<R, E>,
    ) -> Result<Result<R, E>, StoreError> {
        let r = f(&mut self.lock());
        if r.is_ok() {
            self.persist().await?;
        }
        Ok(r)
    }

    /// How many times the document was written since open.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Writes the latest state (serialised after taking the write lock).
    pub async fn persist(&self) -> Result<(), StoreError> {
        let _w = self.write.lock().await;
        let bytes = {
            let mut d = self.lock();
            d.version = STORE_VERSION;
            serde_json::to_vec_pretty(&*d).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                why: e.to_string(),
            })?
        };
        let path = self.path.clone();
        let res =
            tokio::task::spawn_blocking(move || write_atomic(&path, &bytes, SECRET_FILE_MODE))
                .await;
        match res {
            Ok(Ok(())) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(source)) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
            Err(e) => Err(StoreError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::machine::{DeviceConnect, Reason};
    use crate::pairing::types::ClientMeta;

    #[tokio::test]
    async fn persists_reloads_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
        let c = DeviceConnect {
            device_id: "d1".into(),
            public_key: "pk".into(),
            role: "node".into(),
            scopes: vec![],
            meta: ClientMeta::default(),
        };
        let id = store
            .update(|d| {
                d.request(
                    &c,
                    Reason::NotPaired,
                    false,
                    crate::util::now_ms(),
                    &mut OsEntropy,
                )
                .unwrap()
                .0
                .request_id
            })
            .await
            .unwrap();
        store
            .update(|d| d.approve(&id, None, crate::util::now_ms(), &mut OsEntropy))
            .await
            .unwrap()
            .unwrap();
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert!(again.read(|d| d.paired.contains_key("d1")));
        drop(again);
        std::fs::write(Store::file(dir.path()), "{ truncated").unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn refused_requests_never_reach_storage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let dev = |i: usize| DeviceConnect {
            device_id: format!("d{i}"),
            public_key: format!("pk{i}"),
            role: "operator".into(),
            scopes: vec![],
            meta: ClientMeta {
                remote_ip: Some("10.0.0.9".into()),
                ..Default::default()
            },
        };
        let now = crate::util::now_ms();
        let ask = |i| {
            let c = dev(i);
            move |d: &mut PairingData| d.request(&c, Reason::NotPaired, false, now, &mut OsEntropy)
        };
        let mut accepted = 0;
        while store.try_update(ask(accepted)).await.unwrap().is_ok() {
            accepted += 1;
            assert!(accepted < 1000, "the pending cap holds");
        }
        let before = store.writes();
        assert_eq!(before, accepted as u64, "one write per accepted request");
        for i in 0..200 {
            assert!(store.try_update(ask(10_000 + i)).await.unwrap().is_err());
        }
        assert_eq!(store.writes(), before, "refused requests are not written");
    }
}
