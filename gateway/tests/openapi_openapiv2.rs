//! The document of `tests/fixtures/petstore.proto`, an API written for grpc-gateway's
//! protoc-gen-openapiv2: what each `openapiv2` option says must be in the OpenAPI 3.1
//! document, whatever source the descriptors come from.

use std::process::Command;

use articles_gateway::openapi::ApiInfo;
use serde_json::{Value, json};

use super::{fixture_bytes, fixture_document, to_value};

fn petstore_bytes() -> Vec<u8> {
    fixture_bytes("petstore.proto")
}

fn petstore_doc() -> Value {
    let info = ApiInfo {
        title: "fallback title".to_owned(),
        version: "0".to_owned(),
        ..ApiInfo::default()
    };
    let doc = fixture_document("petstore.proto", info);
    // For checking with an external validator, as the library API's document.
    if let Some(out) = std::env::var_os("OPENAPI_PETSTORE_OUT")
        && let Err(e) = std::fs::write(&out, articles_gateway::openapi::to_pretty_json(&doc))
    {
        panic!("writing {}: {e}", out.display());
    }
    to_value(&doc)
}

#[test]
fn the_swagger_option_gives_info_servers_security_and_external_docs() {
    let doc = petstore_doc();
    assert_eq!(
        doc["info"],
        json!({
            "title": "Pet Store",
            "version": "2.1",
            "description": "Pets, described the protoc-gen-openapiv2 way.",
            "termsOfService": "https://petstore.example.com/terms",
            "contact": {
                "name": "Pet Store team",
                "url": "https://petstore.example.com",
                "email": "pets@example.com"
            },
            // Not an SPDX expression, and it has a URL: no identifier.
            "license": {
                "name": "BSD 3-Clause License",
                "url": "https://opensource.org/licenses/BSD-3-Clause"
            }
        })
    );
    // host + base_path, once per scheme.
    assert_eq!(
        doc["servers"],
        json!([
            {"url": "https://petstore.example.com/api"},
            {"url": "http://petstore.example.com/api"}
        ])
    );
    // The API's schemes replace the gateway's bearer default, translated to OpenAPI 3.
    assert_eq!(
        doc["components"]["securitySchemes"],
        json!({
            "ApiKeyAuth": {
                "type": "apiKey",
                "name": "X-API-Key",
                "in": "header",
                "description": "One key per client."
            },
            "BasicAuth": {"type": "http", "scheme": "basic"},
            "OAuth2": {
                "type": "oauth2",
                "flows": {
                    "authorizationCode": {
                        "authorizationUrl": "https://auth.example.com/authorize",
                        "tokenUrl": "https://auth.example.com/token",
                        "scopes": {"read": "Read pets", "write": "Change pets"}
                    }
                }
            }
        })
    );
    assert_eq!(doc["security"], json!([{"ApiKeyAuth": []}]));
    assert_eq!(
        doc["externalDocs"],
        json!({"url": "https://petstore.example.com/docs", "description": "The store's handbook"})
    );
}

#[test]
fn the_tag_options_name_and_describe_the_tags() {
    let doc = petstore_doc();
    assert_eq!(
        doc["tags"],
        json!([
            {
                "name": "Pets",
                "description": "Pets and their owners.",
                "externalDocs": {"url": "https://petstore.example.com/docs/tags/pets"}
            },
            {"name": "Admin", "description": "Operations for the staff."}
        ])
    );
    assert_eq!(doc["paths"]["/v1/pets"]["get"]["tags"], json!(["Pets"]));
}

#[test]
fn the_operation_options_override_comments_ids_tags_and_security() {
    let doc = petstore_doc();
    let get = &doc["paths"]["/v1/pets/{id}"]["get"];
    assert_eq!(get["operationId"], "findPet");
    assert_eq!(get["summary"], "Find a pet by id");
    assert!(
        get["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Returns one pet.") && !d.contains("gives way")),
        "{get}"
    );
    assert_eq!(get["security"], json!([{"OAuth2": ["read"]}]));
    assert_eq!(
        get["externalDocs"],
        json!({"url": "https://petstore.example.com/docs/find"})
    );

    // No security of its own: the document's applies (none written on the operation).
    let list = &doc["paths"]["/v1/pets"]["get"];
    assert!(list.get("security").is_none(), "{list}");
    assert_eq!(list["summary"], "Lists the pets.");

    let create = &doc["paths"]["/v1/pets"]["post"];
    assert_eq!(create["tags"], json!(["Pets", "Admin"]));
    assert_eq!(create["deprecated"], true);
    // The declared header first; then the partial-response parameters every operation has.
    assert_eq!(
        create["parameters"][0],
        json!({
            "name": "X-Request-Source",
            "in": "header",
            "required": true,
            "description": "Who asks.",
            "schema": {"type": "string"}
        })
    );
    assert_eq!(create["parameters"][1]["name"], "fields");

    // One id per binding: the second binding's is numbered, as the gateway's own are.
    assert_eq!(
        doc["paths"]["/v1/pets/{id}"]["patch"]["operationId"],
        "updatePet"
    );
    assert_eq!(
        doc["paths"]["/v1/pets/{id}"]["put"]["operationId"],
        "updatePet2"
    );
}

#[test]
fn the_schema_option_titles_describes_requires_and_exemplifies_a_message() {
    let doc = petstore_doc();
    let pet = &doc["components"]["schemas"]["Pet"];
    assert_eq!(pet["title"], "A pet");
    assert_eq!(pet["description"], "A pet of the store.");
    assert_eq!(
        pet["examples"],
        json!([{"id": "42", "name": "Rex", "species": "DOG"}])
    );
    assert_eq!(
        pet["externalDocs"],
        json!({"url": "https://petstore.example.com/docs/pets"})
    );
    // In a request, `required` lists the option's names (message and field options), and the
    // example leaves out what a request must not send (`id` is OUTPUT_ONLY).
    let input = &doc["components"]["schemas"]["Pet-Input"];
    let mut required: Vec<&str> = input["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    required.sort_unstable();
    assert_eq!(required, ["name", "nickname"]);
    assert_eq!(
        input["examples"],
        json!([{"name": "Rex", "species": "DOG"}])
    );
}

#[test]
fn the_field_options_give_titles_bounds_formats_and_examples() {
    let doc = petstore_doc();
    let props = &doc["components"]["schemas"]["Pet-Input"]["properties"];
    assert_eq!(
        props["name"],
        json!({
            "type": "string",
            "title": "Name",
            "description": "The pet's name.",
            "examples": ["Rex"],
            "maxLength": 64,
            "minLength": 1
        })
    );
    assert_eq!(props["id"]["pattern"], "^[0-9]+$");
    assert_eq!(props["id"]["examples"], json!(["42"]));
    assert_eq!(props["id"]["readOnly"], true);
    // A double is a number or a non-finite string: the bounds go to the number.
    assert_eq!(props["weight_kg"]["oneOf"][0]["minimum"], 0.5);
    assert_eq!(props["weight_kg"]["oneOf"][0]["exclusiveMaximum"], 200);
    assert!(props["weight_kg"]["oneOf"][0].get("maximum").is_none());
    // Repeated: item counts on the array, lengths on its items.
    assert_eq!(props["tags"]["minItems"], 1);
    assert_eq!(props["tags"]["maxItems"], 5);
    assert_eq!(props["tags"]["uniqueItems"], true);
    assert_eq!(props["tags"]["items"]["maxLength"], 20);
    assert_eq!(props["color"]["enum"], json!(["brown", "black", "white"]));
    assert_eq!(props["age"]["minimum"], 1);
    assert_eq!(props["age"]["maximum"], 30);
    assert_eq!(props["age"]["readOnly"], true);
    // Examples where the options give none: valid for the format, within the bounds.
    assert_eq!(props["owner_email"]["format"], "email");
    assert_eq!(
        props["owner_email"]["examples"],
        json!(["user@example.com"])
    );
    assert_eq!(
        props["chip_id"]["examples"],
        json!(["3fa85f64-5717-4562-b3fc-2c963f66afa6"])
    );
    assert_eq!(props["age"]["examples"], json!([1]));
    assert_eq!(props["color"]["examples"], json!(["brown"]));
    assert_eq!(
        doc["components"]["schemas"]["Species"]["examples"],
        json!(["DOG"]),
        "an enum's example is its first non-zero value"
    );
    // IMMUTABLE (field_behavior) is said in the description.
    assert!(
        props["chip_id"]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("The microchip's id.") && d.contains("Immutable")),
        "{}",
        props["chip_id"]
    );

    // Path and query parameters take them too, on the parameter and its schema.
    let id = &doc["paths"]["/v1/pets/{id}"]["get"]["parameters"][0];
    assert_eq!(id["description"], "The pet's id.");
    assert_eq!(
        id["schema"],
        json!({"type": "string", "description": "The pet's id.", "examples": ["42"]})
    );
    let page_size = &doc["paths"]["/v1/pets"]["get"]["parameters"][0];
    assert_eq!(
        page_size["schema"],
        json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 100, "examples": [20]})
    );
}

#[test]
fn bodies_are_shared_required_only_when_refused_empty_and_message_fields_nullable() {
    let doc = petstore_doc();
    // `body: "pet"`, a REQUIRED field: an empty body is a 400, so the body is required.
    let create = &doc["paths"]["/v1/pets"]["post"]["requestBody"];
    assert_eq!(create["required"], true);
    assert_eq!(
        create["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Pet-Input"
    );
    // PATCH and PUT share one component; nothing in it is REQUIRED.
    for method in ["patch", "put"] {
        let body = &doc["paths"]["/v1/pets/{id}"][method]["requestBody"];
        assert_eq!(
            body["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/UpdatePetRequest-Body"}),
            "{method}"
        );
        assert!(body.get("required").is_none(), "{method}: {body}");
    }
    let pet = &doc["components"]["schemas"]["UpdatePetRequest-Body"]["properties"]["pet"];
    assert_eq!(
        pet,
        &json!({
            "oneOf": [{"$ref": "#/components/schemas/Pet-Input"}, {"type": "null"}],
            "description": "What changes."
        })
    );
    // A Timestamp (a string in JSON) is `[string, null]` in requests, a string in responses.
    assert_eq!(
        doc["components"]["schemas"]["Pet-Input"]["properties"]["birth_time"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        doc["components"]["schemas"]["Pet"]["properties"]["birth_time"]["type"],
        "string"
    );
}

#[test]
fn the_options_are_read_from_a_descriptor_set_file_and_flags_set_contact_and_license() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let file = dir.path().join("petstore.binpb");
    if let Err(e) = std::fs::write(&file, petstore_bytes()) {
        panic!("writing the descriptor set: {e}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
        .arg("openapi")
        .arg("--descriptor-set")
        .arg(&file)
        .args(["--openapi-license", "Apache-2.0"])
        .args(["--openapi-contact-email", "ops@example.com"])
        .env_remove("RUST_LOG")
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("running articles-gateway openapi: {e}"),
    };
    assert!(output.status.success(), "{output:?}");
    // All went well: nothing on stderr.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let doc: Value = match serde_json::from_slice(&output.stdout) {
        Ok(v) => v,
        Err(e) => panic!("the output is not JSON: {e}"),
    };
    assert_eq!(doc["info"]["title"], "Pet Store");
    assert_eq!(
        doc["paths"]["/v1/pets/{id}"]["get"]["operationId"],
        "findPet"
    );
    // The operator's flags win over the proto's option; an SPDX id is the identifier too.
    assert_eq!(
        doc["info"]["license"],
        json!({"name": "Apache-2.0", "identifier": "Apache-2.0"})
    );
    assert_eq!(doc["info"]["contact"], json!({"email": "ops@example.com"}));
}
