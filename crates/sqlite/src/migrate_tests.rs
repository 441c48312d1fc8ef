//! Migrations: older files open under the current schema.

use super::*;

/// Three versions of one store; step 3 reads the column step 2 adds, so it only works in order,
/// and it copies rows, so running it twice would show.
const STEPS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    "ALTER TABLE items ADD COLUMN tag TEXT NOT NULL DEFAULT 'old';",
    "CREATE TABLE notes (item INTEGER NOT NULL, note TEXT NOT NULL);
     INSERT INTO notes SELECT id, tag || ':' || body FROM items;",
];

const V3: StoreSchema = StoreSchema {
    store: "test store",
    tables: &["items"],
    migrations: STEPS,
};

/// Version 3 plus a step that fails half-way (its table is created, then an insert fails).
const BROKEN: StoreSchema = StoreSchema {
    store: "test store",
    tables: &["items"],
    migrations: &[
        STEPS[0],
        STEPS[1],
        STEPS[2],
        "CREATE TABLE extra (x); INSERT INTO no_such_table VALUES (1);",
    ],
};

fn user_version(path: &Path) -> i32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A store as the build with only the first `version` steps wrote it, holding `rows` items.
fn old_store(path: &Path, version: i32, rows: usize) {
    create_store_at_version(path, &V3, version).unwrap();
    let c = Connection::open(path).unwrap();
    for i in 0..rows {
        c.execute("INSERT INTO items (body) VALUES (?1)", [format!("row {i}")])
            .unwrap();
    }
    c.close().unwrap();
}

fn notes(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT note FROM notes ORDER BY item")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn an_old_database_opens_with_the_current_schema_and_keeps_its_rows() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    old_store(&p, 2, 0);
    Connection::open(&p)
        .unwrap()
        .execute(
            "INSERT INTO items (body, tag) VALUES ('kept', 'v2'), ('also kept', 'v2')",
            [],
        )
        .unwrap();
    assert_eq!(user_version(&p), 2);
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(notes(&conn), ["v2:kept", "v2:also kept"]);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    drop(conn);
    assert_eq!(user_version(&p), 3);
    // opening again applies nothing (step 3 would copy the rows a second time)
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(notes(&conn).len(), 2);
}

#[test]
fn a_version_gap_applies_every_step_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    old_store(&p, 1, 3);
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(columns(&conn, "items"), ["id", "body", "tag"]);
    // step 3 saw the column of step 2
    assert_eq!(notes(&conn), ["old:row 0", "old:row 1", "old:row 2"]);
    drop(conn);
    assert_eq!(user_version(&p), 3);
}

#[test]
fn a_new_store_runs_every_step() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(columns(&conn, "items"), ["id", "body", "tag"]);
    assert_eq!(columns(&conn, "notes"), ["item", "note"]);
    drop(conn);
    assert_eq!(user_version(&p), 3);
}

#[test]
fn a_legacy_unversioned_store_gets_every_step() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             INSERT INTO items (body) VALUES ('legacy');",
        )
        .unwrap();
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(notes(&conn), ["old:legacy"]);
    drop(conn);
    assert_eq!(user_version(&p), 3);
}

#[test]
fn a_failing_step_leaves_the_file_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    old_store(&p, 1, 5);
    let before = std::fs::read(&p).unwrap();
    let e = open_store(&p, &BROKEN).unwrap_err();
    assert!(
        matches!(e, StoreError::Migration { from: 1, to: 4, .. }),
        "{e:?}"
    );
    assert!(!e.is_damaged());
    let msg = e.to_string();
    assert!(msg.contains("t.sqlite"), "{msg}");
    assert!(msg.contains("step 4"), "{msg}");
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(msg.contains("left unchanged"), "{msg}");
    // steps 2 and 3 of the same run were rolled back with step 4
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "the file is byte-identical"
    );
    assert_eq!(user_version(&p), 1);
    let c = Connection::open(&p).unwrap();
    assert_eq!(columns(&c, "items"), ["id", "body"]);
    assert!(columns(&c, "notes").is_empty());
    assert!(columns(&c, "extra").is_empty());
    drop(c);
    // the build that knows only three steps still opens it
    let conn = open_store(&p, &V3).unwrap();
    assert_eq!(notes(&conn).len(), 5);
}

#[test]
fn concurrent_opens_of_an_old_store_migrate_it_once() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    // from version 2: only step 3 is left
    old_store(&p, 2, 10);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let p = &p;
                s.spawn(move || open_store(p, &V3).map(drop))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let conn = open_store(&p, &V3).unwrap();
    // step 3 copied the rows exactly once
    assert_eq!(notes(&conn).len(), 10);
    drop(conn);
    assert_eq!(user_version(&p), 3);
}

#[test]
fn a_store_from_a_build_with_more_steps_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    old_store(&p, 3, 1);
    let v2 = StoreSchema {
        migrations: &STEPS[..2],
        ..V3
    };
    let e = open_store(&p, &v2).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::TooNew {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn creating_an_old_store_checks_its_arguments() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.sqlite");
    for v in [0, 4] {
        let e = create_store_at_version(&p, &V3, v).unwrap_err();
        assert!(e.to_string().contains("1..=3"), "{e}");
    }
    assert!(!p.exists());
    create_store_at_version(&p, &V3, 2).unwrap();
    assert_eq!(user_version(&p), 2);
    assert!(create_store_at_version(&p, &V3, 2).is_err(), "exists");
}

#[test]
fn the_guard_fails_a_run_that_started_from_a_stale_version() {
    // rusqlite_migration reads user_version before its transaction: a run that read 1 while
    // another process committed version 2 must not apply step 2 again
    let mut c = Connection::open_in_memory().unwrap();
    c.pragma_update(None, "user_version", 2).unwrap();
    let tx = c.transaction().unwrap();
    assert!(
        matches!(migrate::guard(&tx, 1), Err(rusqlite_migration::HookError::Hook(ref m)) if m.contains("another process")),
        "step 2 of a run from version 1"
    );
    migrate::guard(&tx, 2).unwrap();
    migrate::guard(&tx, 3).unwrap();
}
