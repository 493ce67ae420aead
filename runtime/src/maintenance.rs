//! Keeping a Sluice home: which stored artifacts are still needed (by a run's record, or
//! by a model version published from one) and removing the rest (`sluice store gc`).
//! Reads the model repository and drives the store; writes nothing else.

use std::collections::HashSet;
use std::path::Path;

use crate::models::{ModelError, Repository};
use crate::store::{Collected, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Models(#[from] ModelError),
}

/// Removes every artifact of `home`'s store that no run refers to and no published model
/// version was made from, and the temporary files of writes that never finished; with
/// `dry_run`, only says what it would remove. A run in progress keeps what it wrote.
pub fn collect_garbage(store: &Store, dry_run: bool) -> Result<Collected, MaintenanceError> {
    let keep = model_digests(store.home())?;
    Ok(store.collect_garbage(&keep, dry_run)?)
}

/// The digests of the artifacts every published model version was made from.
fn model_digests(home: &Path) -> Result<HashSet<String>, ModelError> {
    let repo = Repository::open(home);
    let mut digests = HashSet::new();
    for name in repo.names()? {
        for version in repo.versions(&name)? {
            digests.insert(version.meta.model_digest);
        }
    }
    Ok(digests)
}
