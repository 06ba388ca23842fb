//! The document states the `buf.validate` rules of `tests/fixtures/accounts.proto` (the API
//! whose checks tests/validation.rs pins) as JSON Schema keywords.

use articles_gateway::openapi::ApiInfo;
use serde_json::{Value, json};

use super::{fixture_document, to_value};

fn accounts_doc() -> Value {
    let info = ApiInfo {
        title: "accounts".to_owned(),
        version: "1.0.0".to_owned(),
        ..ApiInfo::default()
    };
    to_value(&fixture_document("accounts.proto", info))
}

/// The properties of the CreateAccount request body, wherever the document puts its schema.
fn create_body(doc: &Value) -> Value {
    let body = &doc["paths"]["/v1/accounts"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    let schema = match body["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            doc["components"]["schemas"][name].clone()
        }
        None => body.clone(),
    };
    assert!(schema["properties"].is_object(), "{schema}");
    schema
}

/// `schema` less its description, for comparing keywords.
#[test]
fn buf_validate_rules_are_json_schema_keywords() {
    let doc = accounts_doc();
    let body = create_body(&doc);
    let p = &body["properties"];
    assert_eq!(p["email"]["format"], "email");
    assert_eq!(p["handle"]["minLength"], 3);
    assert_eq!(p["handle"]["maxLength"], 20);
    assert_eq!(p["handle"]["pattern"], "^[a-z][a-z0-9_]*$");
    assert_eq!(p["website"]["format"], "uri");
    assert_eq!(p["request_id"]["format"], "uuid");
    assert_eq!(p["age"]["minimum"], 13);
    assert_eq!(p["age"]["exclusiveMaximum"], 130);
    // Bounded on both sides: neither "NaN" nor an infinity passes, so only numbers are left.
    assert_eq!(p["rating"]["type"], "number", "{}", p["rating"]);
    assert_eq!(p["rating"]["exclusiveMinimum"], 0);
    assert_eq!(p["rating"]["maximum"], 5);
    assert_eq!(p["seats"]["enum"], json!([1, 5, 10]));
    assert_eq!(p["locale"]["enum"], json!(["en", "fr"]));
    assert_eq!(p["invite"]["pattern"], "^inv-");
    assert_eq!(p["tags"]["minItems"], 1);
    assert_eq!(p["tags"]["maxItems"], 3);
    assert_eq!(p["tags"]["uniqueItems"], true);
    assert_eq!(p["tags"]["items"]["minLength"], 1);
    assert_eq!(p["labels"]["maxProperties"], 2);
    assert_eq!(p["labels"]["additionalProperties"]["minLength"], 1);
    // `required: true` is required in the request schema.
    assert_eq!(body["required"], json!(["email"]));
    // `not_in` has no JSON Schema keyword: enforced, not stated.
    assert!(p["lucky"]["enum"].is_null(), "{}", p["lucky"]);
    // Responses state no request rules.
    let account = &doc["components"]["schemas"]["Account"]["properties"];
    assert!(account["email"]["format"].is_null(), "{account}");
}

#[test]
fn path_and_query_parameters_state_their_rules() {
    let doc = accounts_doc();
    let get = &doc["paths"]["/v1/accounts/{id}"]["get"];
    let param = |name: &str| {
        get["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_default()
    };
    assert_eq!(param("id")["schema"]["format"], "uuid");
    assert_eq!(param("history")["schema"]["maximum"], 50);
}
