//! `buf.validate` rules checked by the gateway before the call, on the `accounts.v1` fixture
//! (tests/fixtures/accounts.proto) in front of the generic echo backend: every common rule
//! answers 400 INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the field, and the
//! backend is not called; a valid request reaches the backend as sent; several broken rules
//! are listed together.

use std::time::Duration;

use articles_gateway::{Backend, GatewayBuilder, json::JsonNames};
use serde_json::{Value, json};

use crate::support::{self, Spawned};

struct Accounts {
    gateway: Spawned,
    _backend: Spawned,
    pool: prost_reflect::DescriptorPool,
    client: reqwest::Client,
}

async fn spawn_accounts(names: JsonNames) -> Accounts {
    let pool = support::fixture_pool("accounts.proto");
    let backend = support::spawn_echo_backend(&pool).await;
    let channel =
        match Backend::connect_lazy(&format!("http://{}", backend.addr), Duration::from_secs(1)) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
    let json = articles_gateway::json::JsonOptions {
        names,
        ..Default::default()
    };
    let router = match GatewayBuilder::new()
        .descriptors(pool.clone())
        .backend(channel)
        .json(json)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    Accounts {
        gateway: support::spawn_gateway(router).await,
        _backend: backend,
        pool,
        client: reqwest::Client::new(),
    }
}

/// A sign-up that meets every rule.
fn valid() -> Value {
    json!({
        "email": "ann@example.com",
        "handle": "ann_1",
        "website": "https://example.com/ann",
        "request_id": "0b8f5a4e-2b7c-4d1e-9f6a-3c2d1e0f9a8b",
        "age": 30,
        "rating": 4.5,
        "seats": 5,
        "lucky": "7",
        "locale": "fr",
        "invite": "inv-77-x",
        "plan": "FREE",
        "tags": ["a", "b"],
        "labels": {"team": "red"},
        "avatar": "AAEC",
        "address": {"city": "Lyon", "postcode": "69001"},
        "phone": "+33612345678"
    })
}

/// `valid()` with `key` set to `value` (`null` removes it).
fn with(key: &str, value: Value) -> Value {
    let mut body = valid();
    let Some(object) = body.as_object_mut() else {
        unreachable!("valid() is an object");
    };
    if value.is_null() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), value);
    }
    body
}

impl Accounts {
    async fn create(&self, body: &Value) -> reqwest::Response {
        match self
            .client
            .post(self.gateway.url("/v1/accounts"))
            // A write without credentials is left to the backend, which authenticates first.
            .header("authorization", "Bearer anyone")
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The fields a 400's `google.rpc.BadRequest` names, after checking the error's shape and that
/// the backend was not called.
async fn rejected_fields(response: reqwest::Response, what: &str) -> Vec<String> {
    assert_eq!(response.status(), 400, "{what}");
    assert!(
        response
            .headers()
            .get("grpc-metadata-echo-request-bin")
            .is_none(),
        "{what}: the backend was called"
    );
    let body = support::json(response).await;
    assert_eq!(body["code"], 3, "{what}: {body}");
    let details = body["details"].as_array().cloned().unwrap_or_default();
    assert_eq!(details.len(), 1, "{what}: {body}");
    assert_eq!(
        details[0]["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{what}: {body}"
    );
    let violations = details[0]["field_violations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let message = body["message"].as_str().unwrap_or_default();
    for v in &violations {
        let description = v["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{what}: {body}");
        assert!(message.contains(description), "{what}: {body}");
    }
    violations
        .iter()
        .map(|v| v["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_request_meeting_every_rule_reaches_the_backend() {
    let api = spawn_accounts(JsonNames::Proto).await;
    let response = api.create(&valid()).await;
    assert_eq!(response.status(), 200);
    let echoed = support::echoed(&api.pool, "accounts.v1.CreateAccountRequest", &response);
    assert_eq!(echoed, valid());
    // Fields with IGNORE_IF_ZERO_VALUE and unset optional ones are not checked.
    let response = api.create(&with("request_id", Value::Null)).await;
    assert_eq!(response.status(), 200);
    let response = api.create(&with("website", Value::Null)).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn each_broken_rule_is_400_naming_the_field_before_the_call() {
    let api = spawn_accounts(JsonNames::Proto).await;
    let long = "x".repeat(21);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("required", with("email", Value::Null), "email"),
        (
            "string.email",
            with("email", json!("not-an-address")),
            "email",
        ),
        ("string.min_len", with("handle", json!("an")), "handle"),
        ("string.max_len", with("handle", json!(long)), "handle"),
        ("string.pattern", with("handle", json!("Ann")), "handle"),
        ("string.uri", with("website", json!("not a uri")), "website"),
        (
            "string.uuid",
            with("request_id", json!("1234")),
            "request_id",
        ),
        ("int32.gte", with("age", json!(12)), "age"),
        ("int32.lt", with("age", json!(130)), "age"),
        ("double.gt", with("rating", json!(0)), "rating"),
        ("double.lte", with("rating", json!(5.5)), "rating"),
        ("uint32.in", with("seats", json!(2)), "seats"),
        ("int64.not_in", with("lucky", json!("13")), "lucky"),
        ("string.in", with("locale", json!("de")), "locale"),
        ("string.prefix", with("invite", json!("xx-7-x")), "invite"),
        ("string.suffix", with("invite", json!("inv-7-y")), "invite"),
        (
            "string.contains",
            with("invite", json!("inv-8-x")),
            "invite",
        ),
        ("enum.defined_only", with("plan", json!(7)), "plan"),
        (
            "enum.not_in",
            with("plan", json!("PLAN_UNSPECIFIED")),
            "plan",
        ),
        ("repeated.min_items", with("tags", json!([])), "tags"),
        (
            "repeated.max_items",
            with("tags", json!(["a", "b", "c", "d"])),
            "tags",
        ),
        ("repeated.unique", with("tags", json!(["a", "a"])), "tags"),
        ("repeated.items", with("tags", json!(["a", ""])), "tags[1]"),
        (
            "map.max_pairs",
            with("labels", json!({"a": "1", "b": "2", "c": "3"})),
            "labels",
        ),
        (
            "map.keys",
            with("labels", json!({"much-too-long": "1"})),
            "labels[\"much-too-long\"]",
        ),
        (
            "map.values",
            with("labels", json!({"a": ""})),
            "labels[\"a\"]",
        ),
        // 17 bytes, base64.
        (
            "bytes.max_len",
            with("avatar", json!("AAECAwQFBgcICQoLDA0ODxA=")),
            "avatar",
        ),
        (
            "nested message",
            with("address", json!({"city": "Lyon", "postcode": "690"})),
            "address.postcode",
        ),
        ("oneof required", with("phone", Value::Null), "contact"),
        (
            "message CEL",
            {
                let mut body = with("age", json!(16));
                body["plan"] = json!("PRO");
                body
            },
            "",
        ),
    ];
    for (rule, body, field) in cases {
        let fields = rejected_fields(api.create(&body).await, rule).await;
        assert_eq!(fields, [field], "{rule}");
    }
    // Path and query parameters are checked too.
    let get = |path: &str| api.client.get(api.gateway.url(path)).send();
    let response = match get("/v1/accounts/nope").await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rejected_fields(response, "path uuid").await, ["id"]);
    let response = match get("/v1/accounts/0b8f5a4e-2b7c-4d1e-9f6a-3c2d1e0f9a8b?history=51").await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rejected_fields(response, "query lte").await, ["history"]);
}

#[tokio::test]
async fn every_broken_rule_of_a_request_is_listed_together() {
    let api = spawn_accounts(JsonNames::Proto).await;
    let mut body = with("age", json!(200));
    body["handle"] = json!("X");
    body["tags"] = json!([]);
    let response = api.create(&body).await;
    let mut fields = rejected_fields(response, "three rules").await;
    fields.sort();
    fields.dedup();
    assert_eq!(fields, ["age", "handle", "tags"]);
}

#[tokio::test]
async fn rule_messages_read_as_the_api_words_them() {
    let api = spawn_accounts(JsonNames::Proto).await;
    let response = api.create(&with("age", json!(12))).await;
    let body = support::json(response).await;
    assert_eq!(
        body["message"],
        "invalid value for field \"age\": must be greater than or equal to 13 and less than 130 \
         (got 12)"
    );
    let mut body = with("age", json!(16));
    body["plan"] = json!("PRO");
    body["email"] = json!("nope");
    let body = support::json(api.create(&body).await).await;
    assert_eq!(
        body["details"][0]["field_violations"],
        // A message rule names no field; protovalidate lists it first.
        json!([
            {"field": "", "description": "a PRO plan needs an age of 18 or more"},
            {"field": "email", "description": "must be an email address"},
        ]),
        "{body}"
    );
}

#[tokio::test]
async fn the_bad_request_detail_follows_the_json_names() {
    let api = spawn_accounts(JsonNames::Camel).await;
    let response = api.create(&with("handle", json!("an"))).await;
    assert_eq!(response.status(), 400);
    let body = support::json(response).await;
    assert_eq!(
        body["details"][0]["fieldViolations"][0]["field"], "handle",
        "{body}"
    );
    assert!(
        body["details"][0].get("field_violations").is_none(),
        "{body}"
    );
}
