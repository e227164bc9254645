//! Synthetic demo data (placeholder until the generator lands).

use std::sync::Arc;

use crate::ingest::Ingester;

/// Loads demo data into `tenant` and keeps generating until `shutdown` fires.
pub async fn run(
    _ingester: Arc<Ingester>,
    _tenant: String,
    _shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    Ok(())
}
