//! A damaged or lost key store is refused: never an empty store, never a new admin key over the
//! keys already issued.

use std::path::Path;

use touxiang_auth::{ensure_admin, AuthError, KeyStore, Role, ADMIN_KEY_FILE, AUTH_DB_FILE};

/// A data dir as after a first start: an admin key in admin.key, and one more issued key.
fn issued(dir: &Path) -> (String, String) {
    let admin = ensure_admin(dir).unwrap().expect("first start");
    let (_, key) = KeyStore::open(dir)
        .unwrap()
        .create(Role::Reviewer, "r1")
        .unwrap();
    (admin, key)
}

fn assert_names_file_and_recovery(e: &AuthError, file: &Path) {
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("touxiang restore"), "{msg}");
    assert!(msg.contains("move"), "{msg}");
}

#[test]
fn an_empty_key_store_next_to_admin_key_is_refused_and_admin_key_kept() {
    let d = tempfile::tempdir().unwrap();
    issued(d.path());
    let db = d.path().join(AUTH_DB_FILE);
    let admin_file = d.path().join(ADMIN_KEY_FILE);
    let admin_before = std::fs::read(&admin_file).unwrap();
    std::fs::File::create(&db).unwrap(); // truncated to 0 bytes

    let e = KeyStore::open(d.path()).err().expect("refused");
    assert!(matches!(e, AuthError::KeysLost { .. }), "{e}");
    assert_names_file_and_recovery(&e, &db);
    assert!(e.to_string().contains("admin.key"), "{e}");
    let e = ensure_admin(d.path()).unwrap_err();
    assert!(matches!(e, AuthError::KeysLost { .. }), "{e}");
    assert_eq!(
        std::fs::read(&admin_file).unwrap(),
        admin_before,
        "admin.key unchanged"
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the file is left as it was"
    );
}

#[test]
fn a_missing_key_store_next_to_admin_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    issued(d.path());
    let db = d.path().join(AUTH_DB_FILE);
    let admin_file = d.path().join(ADMIN_KEY_FILE);
    let admin_before = std::fs::read(&admin_file).unwrap();
    std::fs::remove_file(&db).unwrap();

    let e = ensure_admin(d.path()).unwrap_err();
    assert!(matches!(e, AuthError::KeysLost { .. }), "{e}");
    assert_names_file_and_recovery(&e, &db);
    assert_eq!(std::fs::read(&admin_file).unwrap(), admin_before);
    assert!(!db.exists(), "no empty key store was created");
}

#[test]
fn an_empty_or_corrupt_key_store_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("keys.sqlite");
    {
        let ks = KeyStore::open_file(&db).unwrap();
        for i in 0..50 {
            ks.create(Role::Originator, &format!("k{i}")).unwrap();
        }
    }
    // garbage over the middle of the file
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    let end = (mid + 4096).min(bytes.len());
    bytes[mid..end].fill(0x5A);
    std::fs::write(&db, &bytes).unwrap();
    let e = KeyStore::open_file(&db)
        .err()
        .expect("corrupt file refused");
    assert!(
        matches!(e, AuthError::Store(ref s) if s.is_damaged()),
        "{e}"
    );
    assert_names_file_and_recovery(&e, &db);

    // 0 bytes, no admin.key: refused all the same (the file existed, its keys are gone)
    std::fs::File::create(&db).unwrap();
    let e = KeyStore::open_file(&db).err().expect("empty file refused");
    assert!(
        matches!(e, AuthError::Store(ref s) if s.is_damaged()),
        "{e}"
    );
    assert_names_file_and_recovery(&e, &db);
    assert!(e.to_string().contains("0 bytes"), "{e}");
}

#[test]
fn a_missing_key_store_without_admin_key_is_created_fresh() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join(AUTH_DB_FILE);
    assert!(!db.exists());
    assert_eq!(KeyStore::open(d.path()).unwrap().count().unwrap(), 0);
    assert!(db.exists());
    let (admin, key) = issued(d.path());
    // reopened (as at the next start): the keys are there
    let ks = KeyStore::open(d.path()).unwrap();
    assert!(ks.verify(&admin).unwrap().is_some());
    assert!(ks.verify(&key).unwrap().is_some());
    assert_eq!(ks.count().unwrap(), 2);
}
