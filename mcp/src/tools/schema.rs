//! Tool schemas as strict JSON Schema validators (ajv in strict mode, say) accept
//! them. schemars describes Rust number types with `format` values of its own
//! (`uint32`, `double`, `uint`, …), which JSON Schema does not define and strict
//! validators refuse; the bounds that matter are declared with `minimum` and
//! `maximum` on the fields instead.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;

/// The `format` values JSON Schema 2020-12 defines; any other is dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// `tool` with non-standard `format` values removed from its input and output schemas.
pub(super) fn polish(mut tool: Tool) -> Tool {
    tool.input_schema = Arc::new(cleaned(&tool.input_schema));
    tool.output_schema = tool.output_schema.map(|s| Arc::new(cleaned(&s)));
    tool
}

fn cleaned(schema: &JsonObject) -> JsonObject {
    let mut value = Value::Object(schema.clone());
    strip_formats(&mut value);
    match value {
        Value::Object(map) => map,
        _ => schema.clone(),
    }
}

/// Removes every non-standard `format` keyword, at any depth. A property that happens
/// to be called `format` is a schema, not a keyword, and stays.
fn strip_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                map.remove("format");
            }
            for (key, child) in map.iter_mut() {
                if key == "properties" || key == "$defs" || key == "definitions" {
                    if let Value::Object(named) = child {
                        named.values_mut().for_each(strip_formats);
                    }
                } else {
                    strip_formats(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Rust-number formats go at any depth; standard ones and a property named
    /// `format` stay.
    #[test]
    fn non_standard_formats_are_removed() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "limit": {"type": ["integer", "null"], "format": "uint32", "minimum": 1},
                "format": {"type": "string", "format": "date-time"},
                "nested": {"anyOf": [{"type": "number", "format": "double"}]}
            },
            "$defs": {"X": {"type": "integer", "format": "uint"}}
        });
        strip_formats(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "limit": {"type": ["integer", "null"], "minimum": 1},
                    "format": {"type": "string", "format": "date-time"},
                    "nested": {"anyOf": [{"type": "number"}]}
                },
                "$defs": {"X": {"type": "integer"}}
            })
        );
    }
}
