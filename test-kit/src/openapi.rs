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

/// Where `doc` breaks the rules the services' contract keeps (scripts/contract checks the
/// behaviour behind them): each operation has a unique `operationId`; every error response
/// (4xx, 5xx) is `application/problem+json` only; no parameter is nullable; every `{id}` path
/// parameter is a `RecordId` (a hyphenated UUID); every request body schema refuses unknown
/// fields. Each broken rule is one line naming the operation.
pub fn contract_violations(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for (path, item) in &paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let name = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if ids.insert(id.to_owned()) => {}
                other => out.push(format!("{name}: operationId {other:?} missing or repeated")),
            }
            for (status, res) in op["responses"].as_object().into_iter().flatten() {
                let is_error = status.starts_with('4') || status.starts_with('5');
                let types: Vec<&String> = res["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(t, _)| t)
                    .collect();
                if is_error && types != ["application/problem+json"] {
                    out.push(format!("{name}: {status} is {types:?}, not problem+json"));
                }
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                let pname = param["name"].as_str().unwrap_or("?");
                let types = &param["schema"]["type"];
                if types
                    .as_array()
                    .is_some_and(|t| t.contains(&Value::from("null")))
                {
                    out.push(format!("{name}: parameter {pname} is nullable"));
                }
                if param["in"] == "path"
                    && pname == "id"
                    && param["schema"]["$ref"] != "#/components/schemas/RecordId"
                {
                    out.push(format!("{name}: path id is not a RecordId"));
                }
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            if !body.is_null() {
                let schema = resolve(doc, body);
                let closed = |s: &Value| resolve(doc, s)["additionalProperties"] == false;
                let ok = match schema["oneOf"].as_array() {
                    Some(forms) => forms.iter().all(closed),
                    None => closed(schema),
                };
                if !ok {
                    out.push(format!("{name}: request body accepts unknown fields"));
                }
            }
        }
    }
    out
}

/// `schema` itself, or what its `$ref` names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| doc.pointer(pointer))
        .unwrap_or(schema)
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
    fn broken_contract_rules_are_named() {
        let doc = json!({
            "paths": {"/things/{id}": {
                "get": {"operationId": "get", "parameters": [
                    {"name": "id", "in": "path", "schema": {"type": "string"}},
                    {"name": "q", "in": "query", "schema": {"type": ["string", "null"]}}
                ], "responses": {"404": {"content": {"application/json": {}}}}},
                "patch": {"operationId": "get",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {}}}
            }}
        });
        assert_eq!(
            contract_violations(&doc),
            [
                "GET /things/{id}: 404 is [\"application/json\"], not problem+json",
                "GET /things/{id}: path id is not a RecordId",
                "GET /things/{id}: parameter q is nullable",
                "PATCH /things/{id}: operationId Some(\"get\") missing or repeated",
                "PATCH /things/{id}: request body accepts unknown fields",
            ]
        );
    }

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
