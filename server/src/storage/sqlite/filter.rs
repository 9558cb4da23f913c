//! Turns a [`Filter`] into SQL conditions on the `memories` table (alias `m`).
//!
//! Tag lists travel as one JSON array parameter read with `json_each`, so the SQL text
//! is the same whatever the number of tags and statements stay cached.

use rusqlite::types::Value;

use crate::memory::{Filter, TagMatch, normalize_tags};

/// SQL conditions (each starting with ` AND `) and their parameters, in order.
#[derive(Debug, Default)]
pub(super) struct SqlFilter {
    pub conditions: String,
    pub params: Vec<Value>,
}

impl SqlFilter {
    pub fn new(filter: &Filter) -> Self {
        let mut sql = SqlFilter::default();
        // Tags that cannot be valid are simply not matched: a filter is not a write.
        let tags = normalize_tags(&filter.tags).unwrap_or_else(|_| filter.tags.clone());
        if !tags.is_empty() {
            let list = serde_json::to_string(&tags).expect("a list of strings serialises");
            match filter.tag_match {
                TagMatch::Any => sql.push(
                    "m.id IN (SELECT memory_id FROM memory_tags \
                     WHERE tag IN (SELECT value FROM json_each(?)))",
                    [Value::Text(list)],
                ),
                TagMatch::All => sql.push(
                    "m.id IN (SELECT memory_id FROM memory_tags \
                     WHERE tag IN (SELECT value FROM json_each(?)) \
                     GROUP BY memory_id HAVING count(*) = ?)",
                    [Value::Text(list), Value::Integer(tags.len() as i64)],
                ),
            }
        }
        if let Some(memory_type) = &filter.memory_type {
            sql.push("m.memory_type = ?", [Value::Text(memory_type.clone())]);
        }
        if let Some(after) = filter.after {
            sql.push("m.created_at >= ?", [Value::Real(after)]);
        }
        if let Some(before) = filter.before {
            sql.push("m.created_at < ?", [Value::Real(before)]);
        }
        sql
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    fn push<const N: usize>(&mut self, condition: &str, params: [Value; N]) {
        self.conditions.push_str(" AND ");
        self.conditions.push_str(condition);
        self.params.extend(params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No filter renders no SQL, so unfiltered queries take the plain path.
    #[test]
    fn empty_filter_is_empty() {
        assert!(SqlFilter::new(&Filter::default()).is_empty());
    }

    /// "all" counts distinct matching tags; the tag list is normalised first.
    #[test]
    fn all_tags_counts_normalised_tags() {
        let sql = SqlFilter::new(&Filter {
            tags: vec!["A".into(), "a".into(), "b".into()],
            tag_match: TagMatch::All,
            ..Filter::default()
        });
        assert!(sql.conditions.contains("HAVING count(*) = ?"));
        assert_eq!(
            sql.params,
            vec![Value::Text(r#"["a","b"]"#.into()), Value::Integer(2)]
        );
    }
}
