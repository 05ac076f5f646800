//! `mark1 migrate`: opens the configured store, creating and migrating it, and prints the
//! schema version it is at.

use serde_json::json;

use super::CliError;
use crate::config::Config;
use crate::store::{open, StoreOptions};

pub async fn run(config: Config, json: bool) -> Result<(), CliError> {
    let opened = open(&StoreOptions::from_config(&config)?).await?;
    if json {
        let report = json!({"url": opened.url, "backend": opened.backend, "version": opened.version});
        println!("{report}");
    } else {
        println!("{} database at {}: schema version {}", opened.backend.as_str(), opened.url, opened.version);
    }
    opened.close().await;
    Ok(())
}
