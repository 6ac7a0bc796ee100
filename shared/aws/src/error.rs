//! Backend failures as [`StoreError`]s that say what was being done, and where.

use pipai_service::ports::StoreError;

/// `"{service} {operation} on {resource}"`, caused by the SDK's error (kept as the source, so a
/// log of the failure shows the SDK's whole chain of causes).
pub(crate) fn store_err(
    service: &str,
    operation: &str,
    resource: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::caused_by(format!("{service} {operation} on {resource}"), e)
}

/// A stored item that does not have the expected shape.
pub(crate) fn bad_item(what: &str, resource: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("malformed {what} in {resource}: {detail}"))
}
