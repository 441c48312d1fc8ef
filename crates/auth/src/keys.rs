//! The key store: `DIR/auth.sqlite`, keys hashed with SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::TryRngCore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{AuthError, Role};

/// File name of the key database inside the data dir.
pub const AUTH_DB_FILE: &str = "auth.sqlite";
/// File name of the first-start admin key inside the data dir.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Prefix of every plaintext key (lets secret scanners recognise leaked keys).
const KEY_PREFIX: &str = "tx_";
/// `last_used` is written at most once per this many seconds per key (keeps verify read-mostly).
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Who a verified key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Public id of the key (`key_` + 16 hex), safe to log.
    pub key_id: String,
    /// Name given at creation; for reviewer keys this is the reviewer id.
    pub name: String,
    /// The key's role.
    pub role: Role,
}

/// Key metadata for listings (never the key or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Public id of the key.
    pub key_id: String,
    /// Name given at creation.
    pub name: String,
    /// The key's role.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful verification (minute granularity), if any.
    pub last_used: Option<DateTime<Utc>>,
}

/// API keys in SQLite (WAL). Safe to use from several threads and from several processes at
/// once (the CLI `keys create|revoke` while the server runs): every call reads committed state,
/// so a revocation takes effect on the server's next request.
pub struct KeyStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms_to_dt(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// SHA-256 of the key, hex.
fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn validate_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidName(name.to_string()))
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('originator','reviewer','analyst','admin')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_used  INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
";

/// The key store's shape for the integrity check at open ([`touxiang_sqlite::open_store`]).
const STORE_SCHEMA: touxiang_sqlite::StoreSchema = touxiang_sqlite::StoreSchema {
    store: "auth key store",
    tables: &["api_keys"],
    migrations: &[SCHEMA],
};

impl KeyStore {
    /// Open (creating if needed) `dir/auth.sqlite`; creates `dir` if missing.
    ///
    /// Refuses ([`AuthError::KeysLost`]) when `dir/admin.key` exists but the database is
    /// missing or empty, so that a lost key store never turns into a new admin key, and refuses
    /// a damaged database like [`KeyStore::open_file`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, AuthError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| AuthError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let db = dir.join(AUTH_DB_FILE);
        let admin_key = dir.join(ADMIN_KEY_FILE);
        if admin_key.exists() {
            let state = match std::fs::metadata(&db) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("missing"),
                Ok(m) if m.is_file() && m.len() == 0 => Some("empty (0 bytes)"),
                _ => None,
            };
            if let Some(state) = state {
                return Err(AuthError::KeysLost {
                    db: db.display().to_string(),
                    admin_key: admin_key.display().to_string(),
                    state,
                });
            }
        }
        Self::open_file(db)
    }

    /// Open the key database at an explicit file path, creating it only when the file does not
    /// exist. An existing file that is empty, corrupt (`PRAGMA quick_check`) or without the
    /// key table is refused with [`AuthError::Store`] naming the file and the recovery step.
    pub fn open_file(path: impl Into<PathBuf>) -> Result<Self, AuthError> {
        let path = path.into();
        let conn = touxiang_sqlite::open_store(&path, &STORE_SCHEMA)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned mutex is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create a key. Returns `(key_id, plaintext_key)`; the plaintext is not stored anywhere
    /// and cannot be recovered — show it to the operator once.
    pub fn create(&self, role: Role, name: &str) -> Result<(String, String), AuthError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = insert_key(&tx, role, name)?;
        tx.commit()?;
        Ok(out)
    }

    /// Revoke a key by key id, or by the name of an active key. Takes effect at once.
    pub fn revoke(&self, key_id_or_name: &str) -> Result<KeyInfo, AuthError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let by_id: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT key_id, revoked_at FROM api_keys WHERE key_id = ?1",
                [key_id_or_name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let key_id = match by_id {
            Some((_, Some(_))) => return Err(AuthError::AlreadyRevoked(key_id_or_name.into())),
            Some((id, None)) => id,
            None => tx
                .query_row(
                    "SELECT key_id FROM api_keys WHERE name = ?1 AND revoked_at IS NULL",
                    [key_id_or_name],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| AuthError::KeyNotFound(key_id_or_name.into()))?,
        };
        tx.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1",
            params![key_id, now_ms()],
        )?;
        let info = get_info(&tx, &key_id)?;
        tx.commit()?;
        Ok(info)
    }

    /// Every key (active and revoked), oldest first.
    pub fn list(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT key_id, name, role, created_at, revoked_at, last_used FROM api_keys
             ORDER BY created_at, key_id",
        )?;
        let rows = stmt.query_map([], row_to_info)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Verify a presented key (the `Authorization: Bearer` value). `None` for unknown or
    /// revoked keys. Records `last_used` (at most once a minute per key).
    pub fn verify(&self, plaintext: &str) -> Result<Option<Principal>, AuthError> {
        let plaintext = plaintext.trim();
        if !plaintext.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let hash = hash_key(plaintext);
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT key_id, name, role, last_used FROM api_keys
                 WHERE key_hash = ?1 AND revoked_at IS NULL",
                [&hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((key_id, name, role, last_used)) = row else {
            return Ok(None);
        };
        let now = now_ms();
        if last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MS) {
            conn.execute(
                "UPDATE api_keys SET last_used = ?2 WHERE key_id = ?1",
                params![key_id, now],
            )?;
        }
        let role = role.parse()?;
        Ok(Some(Principal { key_id, name, role }))
    }

    /// Number of keys ever created (active or revoked).
    pub fn count(&self) -> Result<u64, AuthError> {
        let conn = self.lock();
        Ok(conn.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?)
    }
}

fn insert_key(
    tx: &rusqlite::Transaction<'_>,
    role: Role,
    name: &str,
) -> Result<(String, String), AuthError> {
    validate_name(name)?;
    let taken: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM api_keys WHERE name = ?1 AND revoked_at IS NULL)",
        [name],
        |r| r.get(0),
    )?;
    if taken {
        return Err(AuthError::NameTaken(name.to_string()));
    }
    let plaintext = format!("{KEY_PREFIX}{}", random_hex(32)?);
    let key_id = format!("key_{}", random_hex(8)?);
    tx.execute(
        "INSERT INTO api_keys (key_id, key_hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key_id, hash_key(&plaintext), name, role.as_str(), now_ms()],
    )?;
    Ok((key_id, plaintext))
}

fn row_to_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyInfo> {
    let role: String = r.get(2)?;
    let role = role.parse::<Role>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(KeyInfo {
        key_id: r.get(0)?,
        name: r.get(1)?,
        role,
        created_at: ms_to_dt(r.get(3)?),
        revoked_at: r.get::<_, Option<i64>>(4)?.map(ms_to_dt),
        last_used: r.get::<_, Option<i64>>(5)?.map(ms_to_dt),
    })
}

fn get_info(conn: &Connection, key_id: &str) -> Result<KeyInfo, AuthError> {
    Ok(conn.query_row(
        "SELECT key_id, name, role, created_at, revoked_at, last_used FROM api_keys WHERE key_id = ?1",
        [key_id],
        row_to_info,
    )?)
}

/// First start: when the key store in `dir` holds no keys at all, create an admin key named
/// `admin`, write its plaintext to `dir/admin.key` (mode 0600, created fresh) and return it so
/// the caller prints it once. Returns `None` when keys exist already (nothing is written).
///
/// The key row is committed only after `admin.key` is written, so a failure leaves no key
/// nobody knows. Concurrent first starts are serialised by the database lock.
pub fn ensure_admin(dir: impl AsRef<Path>) -> Result<Option<String>, AuthError> {
    let dir = dir.as_ref();
    let store = KeyStore::open(dir)?;
    let mut conn = store.lock();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n: i64 = tx.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0))?;
    if n > 0 {
        return Ok(None);
    }
    let (_key_id, plaintext) = insert_key(&tx, Role::Admin, "admin")?;
    let path = dir.join(ADMIN_KEY_FILE);
    write_secret_file(&path, &plaintext).map_err(|source| AuthError::Io {
        path: path.display().to_string(),
        source,
    })?;
    tx.commit()?;
    Ok(Some(plaintext))
}

fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    // Remove a stale file first so the new one is created with 0600 from the start (an
    // existing file would keep its old, possibly wider, mode).
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key store at schema version 1 opens under the current code and keeps its keys.
    #[test]
    fn a_version_1_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join(AUTH_DB_FILE);
        touxiang_sqlite::create_store_at_version(&db, &STORE_SCHEMA, 1).unwrap();
        let (id, key) = KeyStore::open_file(&db)
            .unwrap()
            .create(Role::Analyst, "a1")
            .unwrap();
        let store = KeyStore::open_file(&db).unwrap();
        assert_eq!(store.verify(&key).unwrap().unwrap().key_id, id);
        let version: i32 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, STORE_SCHEMA.version());
    }

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let (id, key) = store.create(Role::Reviewer, "r1").unwrap();
        assert!(key.starts_with("tx_") && key.len() == 3 + 64, "{key}");
        assert!(id.starts_with("key_"));
        let p = store.verify(&key).unwrap().expect("valid key");
        assert_eq!(
            p,
            Principal {
                key_id: id.clone(),
                name: "r1".into(),
                role: Role::Reviewer
            }
        );
        // Wrong keys, including one differing in the last character, are rejected.
        let mut wrong = key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(store.verify(&wrong).unwrap(), None);
        assert_eq!(store.verify("").unwrap(), None);
        assert_eq!(store.verify("Bearer x").unwrap(), None);

        // A second store (as the CLI in another process) revokes; the first sees it at once.
        let cli = KeyStore::open(dir.path()).unwrap();
        let info = cli.revoke("r1").unwrap();
        assert_eq!(info.key_id, id);
        assert!(info.revoked_at.is_some());
        assert_eq!(store.verify(&key).unwrap(), None);
        assert!(matches!(cli.revoke(&id), Err(AuthError::AlreadyRevoked(_))));
        assert!(matches!(cli.revoke("r1"), Err(AuthError::KeyNotFound(_))));
        // The name is free again after revocation.
        let (_, key2) = store.create(Role::Analyst, "r1").unwrap();
        assert_eq!(store.verify(&key2).unwrap().unwrap().role, Role::Analyst);
        let list = store.list().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].last_used.is_some());
    }

    #[test]
    fn names_are_checked_and_unique_among_active_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        store.create(Role::Originator, "los-1").unwrap();
        assert!(matches!(
            store.create(Role::Admin, "los-1"),
            Err(AuthError::NameTaken(_))
        ));
        for bad in ["", "has space", "x'; DROP", &"a".repeat(65)] {
            assert!(
                matches!(
                    store.create(Role::Admin, bad),
                    Err(AuthError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(store.count().unwrap(), 1);
    }

    #[test]
    fn keys_are_hashed_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Vec::new();
        {
            let store = KeyStore::open(dir.path()).unwrap();
            for i in 0..5 {
                keys.push(store.create(Role::Originator, &format!("k{i}")).unwrap().1);
            }
            // Checkpoint so the rows are in the main file as well as the WAL.
            store
                .lock()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
        }
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let hay = String::from_utf8_lossy(&bytes);
        for k in &keys {
            assert!(!hay.contains(k.as_str()), "plaintext key found at rest");
            assert!(!hay.contains(&k[3..]), "key body found at rest");
            assert!(hay.contains(&hash_key(k)), "hash should be stored");
        }
    }

    #[cfg(unix)]
    #[test]
    fn ensure_admin_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A stale world-readable file next to a key store without keys must not keep its mode.
        // (Next to a missing or empty key store, admin.key is refused: see tests/integrity.rs.)
        KeyStore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(ADMIN_KEY_FILE), "old").unwrap();
        std::fs::set_permissions(
            dir.path().join(ADMIN_KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let key = ensure_admin(dir.path()).unwrap().expect("first start");
        let path = dir.path().join(ADMIN_KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key);
        let store = KeyStore::open(dir.path()).unwrap();
        let p = store.verify(&key).unwrap().unwrap();
        assert_eq!((p.name.as_str(), p.role), ("admin", Role::Admin));
        // Second start: nothing created, file untouched.
        assert_eq!(ensure_admin(dir.path()).unwrap(), None);
        assert_eq!(store.count().unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key);
    }

    #[test]
    fn ensure_admin_skips_when_keys_exist() {
        let dir = tempfile::tempdir().unwrap();
        KeyStore::open(dir.path())
            .unwrap()
            .create(Role::Analyst, "a")
            .unwrap();
        assert_eq!(ensure_admin(dir.path()).unwrap(), None);
        assert!(!dir.path().join(ADMIN_KEY_FILE).exists());
    }
}
