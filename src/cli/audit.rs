//! `mark1 audit verify`: checks every hash chain of the audit log in the configured store,
//! and the appending of the command line's own records (chain `<node>:cli`).

use std::time::SystemTime;

use clap::Subcommand;
use mark1_actors::domain::audit::ChainVerifier;
use mark1_actors::domain::{AuditEntry, AuditRecord};
use mark1_actors::ports::{Store, StoreError, Write};
use serde_json::{json, Value};

use super::{exit, store_error, table, CliError};
use crate::config::Config;
use crate::store::{open, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Checks every chain of the audit log; exits 1 naming the chain, seq and kind of
    /// the first break of each chain that does not hold.
    Verify {
        /// Prints JSON: {"ok", "chains": [{"node", "records", "head_seq", "break"}]}.
        #[arg(long)]
        json: bool,
    },
}

/// Records read per query while verifying.
const PAGE: usize = 1000;

/// The chain the command line writes: a node's own chain is written only by its audit
/// actor, so the two never race to extend one chain.
pub(super) fn cli_chain(config: &Config) -> String {
    format!("{}:cli", config.node.name)
}

/// Who acts from the command line: the local user, as far as the environment tells.
pub(super) fn cli_actor() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("cli:{user}"),
        _ => "cli".into(),
    }
}

/// Commits `writes` with the audit record of `entry` appended to `chain`, in one
/// transaction. Another writer that extended the chain first makes the store refuse the
/// record's `(node, seq)`; the head is then read again and the batch tried once more.
pub(super) async fn append(
    store: &dyn Store,
    chain: &str,
    entry: AuditEntry,
    mut writes: Vec<Write>,
    now: SystemTime,
) -> Result<(), StoreError> {
    let mut retried = false;
    loop {
        let head = store.audit_head(chain).await?;
        writes.push(Write::AppendAudit(Box::new(AuditRecord::chained(chain, head, now, entry.clone()))));
        match store.write_batch(&writes).await {
            Err(StoreError::Rejected(_)) if !retried => {
                writes.pop();
                retried = true;
            }
            outcome => return outcome,
        }
    }
}

pub async fn run(config: Config, command: AuditCommand) -> Result<(), CliError> {
    let AuditCommand::Verify { json } = command;
    let opened = open(&StoreOptions::from_config(&config)?).await?;
    let outcome = verify(opened.store.as_ref(), json).await;
    opened.close().await;
    outcome
}

async fn verify(store: &dyn Store, json: bool) -> Result<(), CliError> {
    let mut chains = Vec::new();
    for chain in store.audit_chains().await.map_err(store_error)? {
        let mut verifier = ChainVerifier::new(&chain);
        loop {
            let after = verifier.last().map_or(0, |h| h.seq);
            let page = store.audit_records(Some(&chain), after, PAGE).await.map_err(|e| CliError {
                code: if matches!(e, StoreError::Unavailable(_)) { exit::UNAVAILABLE } else { exit::FAILURE },
                message: format!("audit chain '{chain}': cannot read the records after seq {after}: {e}"),
            })?;
            page.iter().for_each(|record| verifier.push(record));
            if page.len() < PAGE {
                break;
            }
        }
        chains.push(verifier);
    }
    let breaks: Vec<String> = chains.iter().filter_map(|c| c.broken()).map(ToString::to_string).collect();
    if json {
        let chains: Vec<Value> = chains.iter().map(chain_json).collect();
        println!("{}", json!({"ok": breaks.is_empty(), "chains": chains}));
    } else if chains.is_empty() {
        println!("the audit log is empty");
    } else {
        let rows: Vec<Vec<String>> = chains
            .iter()
            .map(|c| {
                let status = c.broken().map_or("ok".into(), |b| format!("broken at seq {}", b.seq));
                let head = c.last().map_or("-".into(), |h| h.seq.to_string());
                vec![c.node().to_string(), c.records().to_string(), head, status]
            })
            .collect();
        print!("{}", table::render(&["CHAIN", "RECORDS", "HEAD", "STATUS"], &rows));
    }
    if breaks.is_empty() {
        Ok(())
    } else {
        Err(CliError { code: exit::FAILURE, message: breaks.join("; ") })
    }
}

fn chain_json(verifier: &ChainVerifier) -> Value {
    let broken = verifier.broken().map(|b| {
        let mut value = serde_json::to_value(b).expect("a break serializes");
        value["message"] = Value::String(b.to_string());
        if let Some(fields) = value.as_object_mut() {
            fields.remove("node");
        }
        value
    });
    json!({
        "node": verifier.node(),
        "records": verifier.records(),
        "head_seq": verifier.last().map(|h| h.seq),
        "break": broken,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mark1_actors::domain::audit::verify_chain;
    use mark1_actors::domain::AuditOutcome;
    use mark1_actors::testing::SwitchableStore;

    use super::*;

    #[tokio::test]
    async fn a_writer_that_loses_the_race_for_a_seq_appends_after_the_winner() {
        let store = Arc::new(SwitchableStore::default());
        store.hold_writes(true);
        // Both read the empty head, then wait in write_batch with seq 1.
        let writers: Vec<_> = ["a", "b"]
            .map(|who| {
                let store = store.clone();
                let entry = AuditEntry::new(format!("cli:{who}"), "key.create", AuditOutcome::Success);
                tokio::spawn(async move {
                    append(store.as_ref(), "n:cli", entry, Vec::new(), SystemTime::now()).await
                })
            })
            .into();
        while store.batches() < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        store.hold_writes(false);
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(store.batches(), 3, "one retry");
        let chain = store.audit_records(Some("n:cli"), 0, 10).await.unwrap();
        assert_eq!(verify_chain(&chain).unwrap().records, 2);
    }
}
