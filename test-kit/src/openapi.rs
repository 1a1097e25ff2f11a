//! Checks of an OpenAPI document that client generators rely on.

use serde_json::Value;

/// Every `$ref` of `doc` that names nothing in it (a generator refuses the whole document, or
/// silently drops the operations that use one).
pub fn dangling_refs(doc: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    collect(doc, &mut refs);
    refs.sort();
    refs.dedup();
    refs.into_iter()
        .filter(|r| {
            r.strip_prefix('#')
                .is_none_or(|pointer| doc.pointer(pointer).is_none())
        })
        .collect()
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_to_missing_components_are_found() {
        let doc = json!({
            "paths": {"/a": {"get": {"parameters": [{"schema": {"$ref": "#/components/schemas/Gone"}}],
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Here"}}}}}}}},
            "components": {"schemas": {"Here": {"type": "object"}}}
        });
        assert_eq!(dangling_refs(&doc), ["#/components/schemas/Gone"]);
    }
}
