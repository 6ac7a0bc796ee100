//! Backend failures as [`StoreError`]s that say what was being done, and where.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use pipai_service::ports::StoreError;

/// `"{service} {operation} on {resource}: {the SDK error and its sources}"`.
pub(crate) fn store_err(
    service: &str,
    operation: &str,
    resource: &str,
    e: &(dyn std::error::Error + 'static),
) -> StoreError {
    StoreError(format!("{service} {operation} on {resource}: {}", DisplayErrorContext(e)))
}

/// A stored item that does not have the expected shape.
pub(crate) fn bad_item(what: &str, resource: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError(format!("malformed {what} in {resource}: {detail}"))
}
