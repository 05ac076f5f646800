//! `mark1 keys create|list|revoke`: API keys in the configured store, with no server
//! running (DESIGN §13.8): this is how the first admin key is made. Creating and revoking
//! each write an audit record on the command line's chain, in the same transaction.

use std::time::{Duration, SystemTime};

use clap::Subcommand;
use mark1_actors::domain::{ApiKeyRecord, Role};
use mark1_actors::ports::{Store, Write};
use serde_json::{json, Value};

use super::audit::{append, cli_actor, cli_chain};
use super::{exit, store_error, table, CliError};
use crate::auth::keys::{self, KeySpec};
use crate::config::Config;
use crate::store::{open, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Creates a key and prints it once: it is stored only as its SHA-256.
    Create {
        /// admin, operator, developer, viewer or agent.
        #[arg(long)]
        role: Role,
        /// The namespace the key is bound to; required except for admin keys, which
        /// reach every namespace without one.
        #[arg(long)]
        namespace: Option<String>,
        /// What the key is for.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. "90days"; without it the key lasts until revoked.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Prints JSON: {"key", "id", "role", "namespace"}.
        #[arg(long)]
        json: bool,
    },
    /// Lists every key (never its secret or hash).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revokes a key by its id; exits 3 when there is no such key.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: Config, command: KeysCommand) -> Result<(), CliError> {
    let opened = open(&StoreOptions::from_config(&config)?).await?;
    let store = opened.store.as_ref();
    let chain = cli_chain(&config);
    let outcome = match command {
        KeysCommand::Create { role, namespace, name, expires, json } => {
            create(store, &chain, role, namespace, name, expires, json).await
        }
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Revoke { id, json } => revoke(store, &chain, &id, json).await,
    };
    opened.close().await;
    outcome
}

async fn create(
    store: &dyn Store,
    chain: &str,
    role: Role,
    namespace: Option<String>,
    name: Option<String>,
    expires: Option<Duration>,
    json: bool,
) -> Result<(), CliError> {
    let (now, actor) = (SystemTime::now(), cli_actor());
    let expires_at = expires.map(|d| now + d);
    let spec = KeySpec {
        role,
        namespace,
        name: name.unwrap_or_default(),
        created_by: Some(actor.clone()),
        expires_at,
    };
    let (key, record) =
        keys::generate(spec, now).map_err(|e| CliError { code: exit::USAGE, message: e.to_string() })?;
    let entry = keys::created_entry(actor, &record);
    let put = Write::PutApiKey(Box::new(record.clone()));
    append(store, chain, entry, vec![put], now).await.map_err(store_error)?;
    if json {
        println!("{}", json!({"key": key, "id": record.id, "role": role, "namespace": record.namespace}));
    } else {
        println!("{key}");
        let scope =
            record.namespace.as_deref().map_or("every namespace".to_string(), |ns| format!("namespace {ns}"));
        eprintln!("created {role} key {} for {scope}; it is shown only now, store it safely", record.id);
    }
    Ok(())
}

async fn list(store: &dyn Store, json: bool) -> Result<(), CliError> {
    let found = store.api_keys().await.map_err(store_error)?;
    let now = SystemTime::now();
    if json {
        let keys: Vec<Value> = found.iter().map(|k| key_json(k, now)).collect();
        println!("{}", Value::Array(keys));
        return Ok(());
    }
    let dash = |t: Option<SystemTime>| t.map_or("-".to_string(), rfc3339);
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                if k.name.is_empty() { "-".into() } else { k.name.clone() },
                k.role.to_string(),
                k.namespace.clone().unwrap_or_else(|| "*".into()),
                rfc3339(k.created_at),
                dash(k.expires_at),
                k.state(now).as_str().into(),
            ]
        })
        .collect();
    print!("{}", table::render(&["ID", "NAME", "ROLE", "NAMESPACE", "CREATED", "EXPIRES", "STATE"], &rows));
    Ok(())
}

async fn revoke(store: &dyn Store, chain: &str, id: &str, json: bool) -> Result<(), CliError> {
    let Some(key) = store.api_key(id).await.map_err(store_error)? else {
        return Err(CliError { code: exit::NOT_FOUND, message: format!("no API key with id '{id}'") });
    };
    let (now, actor) = (SystemTime::now(), cli_actor());
    let entry = keys::revoked_entry(actor, &key);
    let write = Write::RevokeApiKey { id: id.to_string(), at: now };
    append(store, chain, entry, vec![write], now).await.map_err(store_error)?;
    // A key revoked before keeps its first revocation time.
    let revoked_at = rfc3339(key.revoked_at.unwrap_or(now));
    if json {
        println!("{}", json!({"id": id, "revoked_at": revoked_at}));
    } else {
        println!("revoked key {id} (as of {revoked_at})");
    }
    Ok(())
}

fn key_json(key: &ApiKeyRecord, now: SystemTime) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "role": key.role,
        "namespace": key.namespace,
        "created_by": key.created_by,
        "created_at": rfc3339(key.created_at),
        "expires_at": key.expires_at.map(rfc3339),
        "revoked_at": key.revoked_at.map(rfc3339),
        "state": key.state(now),
    })
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
