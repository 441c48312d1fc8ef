//! `touxiang backup` / `restore`: a backup restores to a working data dir, a damaged backup is
//! refused before anything is touched, and existing stores are replaced only when asked.

use touxiang::cmd_backup::{backup, restore};
use touxiang_auth::{KeyStore, Role};

fn data_with_a_key() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let ks = KeyStore::open(d.path()).unwrap();
    let (_, key) = ks.create(Role::Analyst, "ops").unwrap();
    std::fs::write(d.path().join("admin.key"), "secret\n").unwrap();
    std::fs::create_dir_all(d.path().join("taxonomies")).unwrap();
    std::fs::write(
        d.path().join("taxonomies/t.csv"),
        "code,name,parent\na,A,\n",
    )
    .unwrap();
    (d, key)
}

#[test]
fn a_backup_restores_into_an_empty_data_dir() {
    let (data, key) = data_with_a_key();
    let out = tempfile::tempdir().unwrap();
    let m = backup(data.path(), &out.path().join("b")).unwrap();
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        paths.contains(&"auth.sqlite") && paths.contains(&"admin.key"),
        "{paths:?}"
    );
    assert!(paths.contains(&"taxonomies/t.csv"));
    assert!(m.files.iter().all(|f| f.sha256.len() == 64));
    let fresh = tempfile::tempdir().unwrap();
    restore(&out.path().join("b"), fresh.path(), false).unwrap();
    let ks = KeyStore::open(fresh.path()).unwrap();
    assert!(
        ks.verify(&key).unwrap().is_some(),
        "the issued key works after restore"
    );
    assert_eq!(
        std::fs::read(fresh.path().join("admin.key")).unwrap(),
        b"secret\n"
    );
}

#[test]
fn a_damaged_backup_is_refused_and_stores_are_replaced_only_with_force() {
    let (data, key) = data_with_a_key();
    let out = tempfile::tempdir().unwrap();
    let b = out.path().join("b");
    backup(data.path(), &b).unwrap();
    // existing stores: refused without --force, replaced with it
    let other = tempfile::tempdir().unwrap();
    KeyStore::open(other.path()).unwrap();
    let e = restore(&b, other.path(), false).unwrap_err().to_string();
    assert!(e.contains("--force") && e.contains("auth.sqlite"), "{e}");
    restore(&b, other.path(), true).unwrap();
    assert!(KeyStore::open(other.path())
        .unwrap()
        .verify(&key)
        .unwrap()
        .is_some());
    // a changed byte: refused before the data dir is touched
    let p = b.join("auth.sqlite");
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let e = restore(&b, target.path(), false).unwrap_err().to_string();
    assert!(e.contains("damaged backup"), "{e}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    // nothing to back up: a mistyped data dir
    let e = backup(&data.path().join("typo"), &out.path().join("c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}
