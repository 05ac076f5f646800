//! Handlers, one module per resource.

pub mod admin;
pub mod agents;
pub mod events;
pub mod models;
pub mod runs;
pub mod scans;
pub mod system;
pub mod tasks;
pub mod workflows;

/// A listing's page size: `limit`, from 1 to 1,000, 100 when unset.
pub(crate) fn page_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(100).clamp(1, 1000)
}

/// The first `limit` of `rows` (read with one more than that) and, when there were more,
/// the cursor of the next page: the last kept row's.
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(cursor) } else { None };
    (rows, next)
}
