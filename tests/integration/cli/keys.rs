//! `mark1 keys …` and `mark1 audit verify` on the configured store, with no node running.

use std::path::Path;
use std::time::SystemTime;

use mark1::auth::keys::{authenticate, AuthError, KeyRejected};
use mark1::store::{open, StoreOptions};
use mark1_actors::domain::Role;
use serde_json::Value;
use sqlx::Connection;

use super::{mark1, write_config};

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    mark1(dir).args(args).output().unwrap()
}

/// Runs a command that must succeed and print JSON.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} prints JSON: {e}"))
}

fn db(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("data/mark1.db").display())
}

/// Authenticates `key` against the store the commands wrote.
async fn check(dir: &Path, key: &str) -> Result<mark1_actors::domain::Principal, AuthError> {
    let opened = open(&StoreOptions::new(db(dir))).await.unwrap();
    let outcome = authenticate(opened.store.as_ref(), key, SystemTime::now()).await;
    opened.close().await;
    outcome
}

#[tokio::test]
async fn keys_create_prints_once_a_key_the_store_accepts() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let created = json(dir.path(), &["keys", "create", "--role", "admin", "--json"]);
    let mut fields: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["id", "key", "namespace", "role"], "exactly these: {created}");
    assert_eq!((&created["role"], &created["namespace"]), (&Value::from("admin"), &Value::Null));
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("mk1_{}_", created["id"].as_str().unwrap())), "{key}");
    let admin = check(dir.path(), key).await.unwrap();
    assert_eq!((admin.role, admin.namespace), (Role::Admin, None));

    let out = run(
        dir.path(),
        &[
            "keys",
            "create",
            "--role",
            "developer",
            "--namespace",
            "team-a",
            "--name",
            "ci",
            "--expires",
            "1h",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let developer = check(dir.path(), printed.trim()).await.unwrap();
    assert_eq!((developer.role, developer.namespace.as_deref()), (Role::Developer, Some("team-a")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));

    for args in [
        &["keys", "create", "--role", "viewer"][..],
        &["keys", "create", "--role", "root"],
        &["keys", "create", "--role", "agent", "--namespace", "Team A"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?} printed no key");
    }
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked_by_id() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let first = json(dir.path(), &["keys", "create", "--role", "operator", "--namespace", "ops", "--json"]);
    let second = json(dir.path(), &["keys", "create", "--role", "admin", "--name", "root", "--json"]);
    let (key, id) = (first["key"].as_str().unwrap(), first["id"].as_str().unwrap());

    let listed = json(dir.path(), &["keys", "list", "--json"]);
    let text = listed.to_string();
    assert!(!text.contains(&key[17..]) && !text.contains("sha256"), "no secret or hash: {text}");
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id, second["id"].as_str().unwrap()]);
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[1]["namespace"], Value::Null);
    assert_eq!(listed[1]["created_by"].as_str().map(|s| s.starts_with("cli")), Some(true));

    let revoked = json(dir.path(), &["keys", "revoke", id, "--json"]);
    assert_eq!(revoked["id"], id);
    assert_eq!(check(dir.path(), key).await, Err(AuthError::Rejected(KeyRejected::Revoked)));
    let table = run(dir.path(), &["keys", "list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("ID ") && table.contains(id) && table.contains("revoked"), "{table}");
    assert!(table.contains("root") && !table.contains(&key[17..]), "{table}");

    let unknown = run(dir.path(), &["keys", "revoke", "000000000000"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("000000000000"));
}

/// A store whose command-line chain holds four records (three creations, one revocation).
fn audited(dir: &Path) {
    write_config(dir);
    for role in ["admin", "admin", "admin"] {
        json(dir, &["keys", "create", "--role", role, "--json"]);
    }
    let id = json(dir, &["keys", "list", "--json"])[0]["id"].as_str().unwrap().to_string();
    json(dir, &["keys", "revoke", &id, "--json"]);
    let report = json(dir, &["audit", "verify", "--json"]);
    assert_eq!(
        report,
        serde_json::json!({"ok": true, "chains": [{"node": "cli:cli", "records": 4, "head_seq": 4, "break": null}]})
    );
}

async fn tamper(dir: &Path, sql: &str) {
    let mut conn = sqlx::SqliteConnection::connect(&db(dir)).await.unwrap();
    let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
    conn.close().await.unwrap();
}

/// `audit verify` fails with exit 1; returns its JSON report's chain and stderr.
fn broken(dir: &Path) -> (Value, String) {
    let out = run(dir, &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    (report["chains"][0].clone(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn audit_verify_names_an_edited_row() {
    let dir = tempfile::tempdir().unwrap();
    audited(dir.path());
    tamper(dir.path(), "UPDATE audit_log SET actor = 'cli:mallory' WHERE node = 'cli:cli' AND seq = 2").await;
    let (chain, stderr) = broken(dir.path());
    assert_eq!(chain["records"], 4);
    assert_eq!((&chain["break"]["seq"], &chain["break"]["kind"]), (&Value::from(2), &Value::from("edited")));
    assert!(
        stderr.contains("'cli:cli'") && stderr.contains("seq 2") && stderr.contains("edited"),
        "{stderr}"
    );
    let human = run(dir.path(), &["audit", "verify"]);
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stdout).contains("broken at seq 2"));
}

#[tokio::test]
async fn audit_verify_names_a_deleted_middle_row() {
    let dir = tempfile::tempdir().unwrap();
    audited(dir.path());
    tamper(dir.path(), "DELETE FROM audit_log WHERE node = 'cli:cli' AND seq = 2").await;
    let (chain, stderr) = broken(dir.path());
    assert_eq!((&chain["records"], &chain["head_seq"]), (&Value::from(3), &Value::from(4)));
    let expected = serde_json::json!({"seq": 3, "kind": "missing", "expected": 2});
    for (field, value) in expected.as_object().unwrap() {
        assert_eq!(&chain["break"][field], value, "{chain}");
    }
    assert!(
        stderr.contains("'cli:cli'") && stderr.contains("seq 3") && stderr.contains("missing"),
        "{stderr}"
    );
}
