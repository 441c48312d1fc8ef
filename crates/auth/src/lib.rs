//! API keys with roles for touxiang.
//!
//! * [`Role`], [`Permission`] and [`allowed`] — the role matrix, one table ([`ROLE_TABLE`]).
//! * [`KeyStore`] — keys in `DIR/auth.sqlite`, stored as SHA-256 hashes only.
//! * [`ensure_admin`] — first start: creates an admin key and writes it to `DIR/admin.key` (0600).
//!
//! ## Why SHA-256 and not argon2
//! Keys are 32 bytes from the operating system's CSPRNG (256 bits of entropy). Slow password
//! hashes (argon2, bcrypt) exist to make guessing *low-entropy* secrets expensive; nobody can
//! enumerate 2^256 candidates whatever the hash cost, so a fast hash is as safe here and lets
//! every request be verified by one indexed lookup (`key_hash = sha256(presented key)`) in
//! microseconds. Because the lookup is by the hash of the *whole* presented key, response
//! timing cannot leak how many leading characters of a real key an attacker guessed.

mod keys;
mod roles;

pub use keys::{ensure_admin, KeyInfo, KeyStore, Principal, ADMIN_KEY_FILE, AUTH_DB_FILE};
pub use roles::{allowed, may_act_as_reviewer, Permission, Role, ROLE_TABLE};

/// Errors of the auth crate. HTTP mapping for the service: `InvalidRole`/`InvalidName` → 400,
/// `NameTaken` → 409, `KeyNotFound` → 404, `AlreadyRevoked` → 409, the rest → 500.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A role string that is not originator|reviewer|analyst|admin.
    #[error("role: unknown role {0:?} (expected originator|reviewer|analyst|admin)")]
    InvalidRole(String),
    /// A key name that is empty, too long or has characters outside `[A-Za-z0-9._@-]`.
    #[error("name: invalid key name {0:?} (1-64 characters of A-Z a-z 0-9 . _ @ -)")]
    InvalidName(String),
    /// An active key already has this name.
    #[error("name: an active key named {0:?} already exists")]
    NameTaken(String),
    /// No key with this id or (active) name.
    #[error("key {0:?} not found")]
    KeyNotFound(String),
    /// The key was revoked before.
    #[error("key {0:?} is already revoked")]
    AlreadyRevoked(String),
    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),
    /// Database failure.
    #[error("auth database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The key database is damaged (empty, corrupt, without its table): refused, unchanged.
    #[error(transparent)]
    Store(#[from] touxiang_sqlite::StoreError),
    /// `admin.key` exists but the key database is missing or empty: keys were issued from a
    /// store that is gone. Refused, so that no new admin key replaces `admin.key`.
    #[error(
        "auth key store {db} is {state} but {admin_key} exists: keys were issued from a key \
         store that is gone, and a new admin key would replace admin.key. Refusing to open it: \
         restore it from a backup with `touxiang restore --from BACKUP_DIR --force` (service \
         stopped), or, to start over without any of the issued keys, move both {db} (with its \
         -wal and -shm files) and {admin_key} away"
    )]
    KeysLost {
        /// The key database (`auth.sqlite`).
        db: String,
        /// The admin key file (`admin.key`).
        admin_key: String,
        /// "missing" or "empty (0 bytes)".
        state: &'static str,
    },
    /// File system failure (data dir, admin.key).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
