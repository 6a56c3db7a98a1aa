//! MLflow's filter grammar for the stages above tracking: the registry searches registered
//! models and model versions with the same clauses, tokenizer and SQL conditions as run search.

use crate::error::Result;
pub use crate::search::{Clause, Entity, Op, Value};
use slipway_core::Sql;

/// Parses a registered-model filter: `name` (`= != LIKE ILIKE IN`) and `tags.<key>`.
pub fn registered_models(input: &str) -> Result<Vec<Clause>> {
    crate::search::parse_registry_filter(false, input)
}

/// Parses a model-version filter: `name`, `run_id`, `source_path` (as `source`),
/// `version_number` (as `version`, numeric) and `tags.<key>`.
pub fn model_versions(input: &str) -> Result<Vec<Clause>> {
    crate::search::parse_registry_filter(true, input)
}

/// The SQL condition comparing a text `column` with a bound value by `op` (`=`, `!=`, `LIKE`,
/// `ILIKE`).
pub fn string_cond(column: &str, op: Op, placeholder: &str) -> String {
    crate::search::string_cond(column, op, placeholder)
}

/// `column [NOT] IN (…)` with the items bound.
pub fn in_list(sql: &mut Sql, column: &str, op: Op, items: &[String]) -> String {
    crate::search::in_list(sql, column, op, items)
}

/// The SQL comparator of a numeric `op`.
pub fn sql_op(op: Op) -> &'static str {
    crate::search::sql_op(op)
}
