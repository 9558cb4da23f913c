//! Turns a [`Filter`] into SQL conditions on `memories m`, with numbered parameters.
//!
//! Tags are one `text[]` parameter matched by the GIN index (`&&` any, `@>` all), so
//! the SQL text is the same whatever the number of tags and statements stay cached.

use tokio_postgres::types::ToSql;

use crate::memory::{Filter, TagMatch, normalize_tags};

/// A query's parameters, numbered as they are pushed.
#[derive(Default)]
pub(super) struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Adds a parameter and returns its placeholder (`$n`).
    pub fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    pub fn as_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| &**v as &(dyn ToSql + Sync))
            .collect()
    }
}

/// SQL conditions (each starting with ` AND `) whose parameters were pushed onto
/// `params`.
pub(super) fn conditions(filter: &Filter, params: &mut Params) -> String {
    let mut sql = String::new();
    // Tags that cannot be valid are simply not matched: a filter is not a write.
    let tags = normalize_tags(&filter.tags).unwrap_or_else(|_| filter.tags.clone());
    if !tags.is_empty() {
        let operator = match filter.tag_match {
            TagMatch::Any => "&&",
            TagMatch::All => "@>",
        };
        sql.push_str(&format!(
            " AND m.tags {operator} {}::text[]",
            params.push(tags)
        ));
    }
    if let Some(memory_type) = &filter.memory_type {
        sql.push_str(&format!(
            " AND m.memory_type = {}",
            params.push(memory_type.clone())
        ));
    }
    if let Some(after) = filter.after {
        sql.push_str(&format!(" AND m.created_at >= {}", params.push(after)));
    }
    if let Some(before) = filter.before {
        sql.push_str(&format!(" AND m.created_at < {}", params.push(before)));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No filter renders no SQL; tags are normalised and numbered after earlier
    /// parameters.
    #[test]
    fn filter_renders_numbered_conditions() {
        let mut params = Params::default();
        assert_eq!(conditions(&Filter::default(), &mut params), "");
        params.push(1_i64);
        let sql = conditions(
            &Filter {
                tags: vec!["A".into(), "a".into(), "b".into()],
                tag_match: TagMatch::All,
                memory_type: Some("note".into()),
                ..Filter::default()
            },
            &mut params,
        );
        assert_eq!(sql, " AND m.tags @> $2::text[] AND m.memory_type = $3");
        assert_eq!(params.as_refs().len(), 3);
    }
}
