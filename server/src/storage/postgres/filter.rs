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
    let mut tags = normalize_tags(&filter.tags).unwrap_or_else(|_| filter.tags.clone());
    // No stored text holds U+0000, and PostgreSQL refuses it in a parameter: a tag or
    // type with one matches nothing.
    let unmatchable = |text: &String| text.contains('\0');
    if tags.iter().any(unmatchable) {
        match filter.tag_match {
            TagMatch::All => return " AND false".into(),
            TagMatch::Any => {
                tags.retain(|t| !unmatchable(t));
                if tags.is_empty() {
                    return " AND false".into();
                }
            }
        }
    }
    if filter.memory_type.as_ref().is_some_and(unmatchable) {
        return " AND false".into();
    }
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

    /// A tag or type holding U+0000 matches nothing instead of reaching PostgreSQL,
    /// which would refuse it.
    #[test]
    fn nul_matches_nothing() {
        let mut params = Params::default();
        let any = Filter {
            tags: vec!["a\0".into(), "b".into()],
            ..Filter::default()
        };
        assert_eq!(conditions(&any, &mut params), " AND m.tags && $1::text[]");
        let all = Filter {
            tag_match: TagMatch::All,
            ..any
        };
        assert_eq!(conditions(&all, &mut Params::default()), " AND false");
        let typed = Filter {
            memory_type: Some("\0".into()),
            ..Filter::default()
        };
        assert_eq!(conditions(&typed, &mut Params::default()), " AND false");
    }
}
