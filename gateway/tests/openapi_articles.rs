//! The OpenAPI document of the article contract.

use articles_gateway::json::{JsonNames, JsonOptions};
use serde_json::{Value, json};

use super::articles_json;

fn op<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in {:#}", doc["paths"]);
    op
}

fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
    let found = op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name));
    match found {
        Some(p) => p,
        None => panic!("no parameter {name} in {:#}", op["parameters"]),
    }
}

#[test]
fn every_binding_is_an_operation_with_its_id_and_service_tag() {
    let doc = articles_json(&JsonOptions::default());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "articles");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"], json!([{"url": "/"}]));
    for (path, method, id) in [
        ("/articles", "get", "ArticleList"),
        ("/articles:export", "get", "ExportArticles"),
        ("/articles:watch", "get", "WatchArticles"),
        ("/articles/{pk}", "get", "ArticleDetail"),
        ("/articles", "post", "CreateArticle"),
        ("/articles/{pk}", "patch", "UpdateArticle"),
        ("/articles/{pk}", "put", "UpdateArticle2"),
        ("/articles/{pk}", "delete", "DeleteArticle"),
    ] {
        let op = op(&doc, path, method);
        assert_eq!(op["operationId"], id, "{method} {path}");
        assert_eq!(op["tags"], json!(["ArticleService"]), "{id}");
    }
    let paths: Vec<&String> = doc["paths"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        paths,
        [
            "/articles",
            "/articles/{pk}",
            "/articles:export",
            "/articles:watch"
        ]
    );
    assert_eq!(doc["tags"][0]["name"], "ArticleService");
    assert_eq!(doc["tags"][0]["description"], "Reads and writes articles.");
}

#[test]
fn list_paging_is_two_non_negative_int32_query_parameters() {
    let doc = articles_json(&JsonOptions::default());
    let list = op(&doc, "/articles", "get");
    for (name, example) in [("page", 1), ("page_size", 10)] {
        let p = param(list, name);
        assert_eq!(p["in"], "query");
        assert_eq!(p["required"], false);
        // The description again on the schema, where generated clients take docstrings
        // from; the example the proto's `openapiv2_field` gives.
        assert_eq!(
            p["schema"],
            json!({
                "type": "integer",
                "format": "int32",
                "minimum": 0,
                "description": p["description"],
                "examples": [example],
            })
        );
    }
    assert!(
        param(list, "page")["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("The 1-based page number"))
    );
    assert!(list.get("requestBody").is_none());
}

#[test]
fn pk_is_a_required_path_parameter_and_not_in_the_query() {
    let doc = articles_json(&JsonOptions::default());
    for method in ["get", "patch", "put", "delete"] {
        let op = op(&doc, "/articles/{pk}", method);
        let pk = param(op, "pk");
        assert_eq!(pk["in"], "path", "{method}");
        assert_eq!(pk["required"], true, "{method}");
        assert_eq!(pk["schema"]["type"], "integer", "{method}");
        // `fields`, the partial-response system parameter, is every operation's.
        let in_query = op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["in"] == "query" && p["name"] != "fields")
        });
        assert!(!in_query, "{method} /articles/{{pk}} has query parameters");
        assert!(
            op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fields")),
            "{method}: no fields parameter"
        );
    }
}

#[test]
fn article_schema_follows_the_output_naming() {
    let proto = articles_json(&JsonOptions::default());
    let article = &proto["components"]["schemas"]["Article"];
    assert_eq!(article["properties"]["create_time"]["type"], "string");
    assert_eq!(
        article["properties"]["id"],
        json!({
            "type": "integer",
            "format": "int32",
            "readOnly": true,
            "description": "The article's id (the table's primary key), a positive int32.",
            "examples": [1],
        })
    );
    // emit_defaults: the gateway always writes every field.
    assert_eq!(
        article["required"],
        json!(["id", "title", "content", "create_time"])
    );
    assert_eq!(
        article["description"],
        "An article, as stored in the `article_article` table."
    );

    let camel = articles_json(&JsonOptions {
        names: JsonNames::Camel,
        emit_defaults: false,
    });
    let article = &camel["components"]["schemas"]["Article"];
    assert!(
        article["properties"]["createTime"].is_object(),
        "{article:#}"
    );
    assert!(article["properties"]["create_time"].is_null());
    assert!(article.get("required").is_none(), "{article:#}");
    let list = op(&camel, "/articles", "get");
    assert_eq!(param(list, "pageSize")["schema"]["format"], "int32");
}

#[test]
fn responses_reference_the_output_messages_and_the_shared_errors() {
    let doc = articles_json(&JsonOptions::default());
    let list = op(&doc, "/articles", "get");
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/ArticleListResponse"})
    );
    let codes = |op: &Value| -> Vec<String> {
        op["responses"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    // 304: a conditional GET whose If-None-Match names the current ETag.
    assert_eq!(
        codes(list),
        [
            "200", "304", "400", "414", "429", "500", "503", "504", "default"
        ]
    );
    assert!(list["responses"]["200"]["headers"]["ETag"].is_object());
    assert_eq!(
        codes(op(&doc, "/articles/{pk}", "patch")),
        [
            "200", "400", "401", "403", "404", "409", "413", "414", "415", "429", "500", "503",
            "504", "default"
        ]
    );
    // A creation is 201, as the proto's `openapiv2_operation` declares and the gateway answers.
    assert_eq!(
        codes(op(&doc, "/articles", "post")),
        [
            "201", "400", "401", "403", "409", "413", "414", "415", "429", "500", "503", "504",
            "default"
        ]
    );
    assert_eq!(
        op(&doc, "/articles", "post")["responses"]["201"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/CreateArticleResponse"})
    );
    assert_eq!(
        list["responses"]["400"],
        json!({"$ref": "#/components/responses/BadRequest"})
    );
    let error = &doc["components"]["schemas"]["Status"];
    assert_eq!(error["properties"]["code"]["type"], "integer");
    assert_eq!(error["properties"]["message"]["type"], "string");
    assert_eq!(error["properties"]["details"]["type"], "array");
    // Named as google.rpc names it (a schema `Error` shadows JavaScript's own in generated
    // TypeScript), its details typed as `Any`, so `details[0]["@type"]` type-checks.
    assert!(doc["components"]["schemas"]["Error"].is_null());
    let any = &error["properties"]["details"]["items"];
    assert_eq!(any["properties"]["@type"]["type"], "string", "{any}");
    assert_eq!(any["required"], json!(["@type"]));
    assert_eq!(any["additionalProperties"], true);
}

#[test]
fn only_writes_require_the_bearer_token() {
    let doc = articles_json(&JsonOptions::default());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"],
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": "The bearer token the service accepts; write operations need it."
        })
    );
    assert!(doc.get("security").is_none(), "no global security");
    for (path, method, secured) in [
        ("/articles", "get", false),
        ("/articles/{pk}", "get", false),
        ("/articles", "post", true),
        ("/articles/{pk}", "patch", true),
        ("/articles/{pk}", "put", true),
        ("/articles/{pk}", "delete", true),
    ] {
        let security = &op(&doc, path, method)["security"];
        if secured {
            assert_eq!(*security, json!([{"bearerAuth": []}]), "{method} {path}");
        } else {
            // Public, and saying so (`security: []`).
            assert_eq!(*security, json!([]), "{method} {path}");
        }
    }
}

#[test]
fn descriptions_come_from_the_proto_comments() {
    let doc = articles_json(&JsonOptions::default());
    let list = op(&doc, "/articles", "get");
    assert_eq!(
        list["summary"],
        "Lists one page of articles, ordered by ascending id."
    );
    assert_eq!(
        list["description"], "gRPC: `article.v1.ArticleService/ArticleList`.",
        "the summary is not said twice"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ArticleListResponse"]["properties"]["total"]["description"],
        "How many articles there are in all."
    );
}

#[test]
fn request_bodies_reject_unknown_fields_and_require_what_field_behavior_requires() {
    let doc = articles_json(&JsonOptions::default());
    let create = op(&doc, "/articles", "post");
    assert_eq!(create["requestBody"]["required"], true);
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/CreateArticleRequest"})
    );
    let schema = &doc["components"]["schemas"]["CreateArticleRequest"];
    assert_eq!(schema["additionalProperties"], false);
    // `google.api.field_behavior = REQUIRED`: a generated client types them as always set.
    assert_eq!(
        schema["required"],
        json!(["title", "content"]),
        "{schema:#}"
    );
    // And a response wrapper always has its article: no null check in generated code.
    assert_eq!(
        doc["components"]["schemas"]["CreateArticleResponse"]["required"],
        json!(["article"])
    );
    assert!(
        schema["description"]
            .as_str()
            .is_some_and(|d| d.contains("lowerCamelCase field names are accepted too"))
    );

    // An empty POST is refused (title and content are REQUIRED): the body is required.
    assert_eq!(create["requestBody"]["required"], true);

    // PATCH and PUT bind `pk` from the path: the body is the rest of the message, one
    // component both share (one model in generated clients, not two identical ones).
    for method in ["patch", "put"] {
        let request = &op(&doc, "/articles/{pk}", method)["requestBody"];
        assert_eq!(
            request["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/UpdateArticleRequest-Body"}),
            "{method}"
        );
        // An empty PATCH changes nothing and answers 200: the body may be left out.
        assert!(request.get("required").is_none(), "{method}: {request}");
        let body = &doc["components"]["schemas"]["UpdateArticleRequest-Body"];
        let keys: Vec<&String> = body["properties"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        // (serde_json's map sorts keys; the document keeps field order.)
        assert_eq!(keys, ["content", "title"], "{method}");
        assert_eq!(body["additionalProperties"], false);
        // proto3 `optional`: JSON `null` is read as "leave it", so the schema allows it.
        assert_eq!(
            body["properties"]["content"]["type"],
            json!(["string", "null"]),
            "{method}"
        );
    }
    // Fields without presence stay as they are.
    assert_eq!(
        doc["components"]["schemas"]["CreateArticleRequest"]["properties"]["title"]["type"],
        "string"
    );
}

#[test]
fn output_is_deterministic() {
    let a = crate::articles_document(&JsonOptions::default());
    let b = crate::articles_document(&JsonOptions::default());
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (
                articles_gateway::openapi::to_pretty_json(&a),
                articles_gateway::openapi::to_pretty_json(&b),
            );
            assert_eq!(a, b);
            assert!(a.ends_with("}\n"));
        }
        _ => panic!("the embedded descriptors do not decode"),
    }
}

#[test]
fn field_rules_of_the_proto_become_schema_constraints() {
    let doc = articles_json(&JsonOptions::default());
    for method in ["get", "patch", "put", "delete"] {
        let pk = param(op(&doc, "/articles/{pk}", method), "pk");
        assert_eq!(pk["schema"]["minimum"], 1, "{method}");
    }
    let create = &doc["components"]["schemas"]["CreateArticleRequest"]["properties"];
    assert_eq!(create["title"]["minLength"], 1);
    assert_eq!(create["title"]["maxLength"], 200);
    assert_eq!(create["content"]["minLength"], 1);
    assert!(create["content"]["maxLength"].is_null());
    let patch = &doc["components"]["schemas"]["UpdateArticleRequest-Body"]["properties"];
    assert_eq!(patch["title"]["maxLength"], 200);
    // Responses state no rules: they are request constraints.
    let article = &doc["components"]["schemas"]["Article"]["properties"];
    assert!(article["title"]["maxLength"].is_null());
}

#[test]
fn the_article_contract_states_examples_a_license_and_a_contact() {
    let doc = articles_json(&JsonOptions::default());
    // From the proto's `openapiv2_swagger` option; no repository path readers lack.
    assert_eq!(doc["info"]["title"], "articles");
    assert_eq!(
        doc["info"]["license"],
        json!({"name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0"})
    );
    assert_eq!(doc["info"]["contact"]["name"], "articles maintainers");
    let text = doc["info"]["description"].as_str().unwrap_or_default();
    assert!(!text.is_empty() && !text.contains("proto/"), "{text}");

    // Path ids the demo data has (the service seeds articles with ids from 1), so "Try it
    // out" and schemathesis' examples reach an article instead of a 404.
    for method in ["get", "patch", "put", "delete"] {
        let pk = param(op(&doc, "/articles/{pk}", method), "pk");
        assert_eq!(pk["schema"]["examples"], json!([1]), "{method}");
    }
    // Bodies Swagger UI prefills with real text, valid for the request.
    let schemas = &doc["components"]["schemas"];
    let create = &schemas["CreateArticleRequest"]["properties"];
    assert_eq!(create["title"]["examples"], json!(["Hello, gRPC"]));
    assert!(create["content"]["examples"][0].is_string());
    let article = &schemas["Article"]["properties"];
    assert_eq!(
        article["create_time"]["examples"],
        json!(["2024-01-15 09:30:00"])
    );
    // A page token that works: none.
    let token = param(op(&doc, "/articles", "get"), "page_token");
    assert_eq!(token["schema"]["examples"], json!([""]));
}
