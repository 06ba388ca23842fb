//! Tests of the OpenAPI document and the served docs (one test binary; see `Cargo.toml`).
//!
//! - `openapi_articles`: the document of the article contract.
//! - `openapi_library`: a second, unrelated API compiled here, exercising what the article
//!   contract does not (resource-name templates, body fields, `response_body`, nested and
//!   recursive messages, enums, 64-bit integers, well-known types).
//! - `openapi_docs`: `/openapi.json` and Swagger UI served over HTTP.
//! - `openapi_drift`: the committed `openapi/articles.openapi.json` is up to date.
//! - `openapi_openapiv2`: an API written for grpc-gateway's protoc-gen-openapiv2
//!   (`tests/fixtures/petstore.proto`): what its `openapiv2` options say is in the document.

mod openapi_articles;
mod openapi_docs;
mod openapi_drift;
mod openapi_library;
mod openapi_openapiv2;

use articles_gateway::json::JsonOptions;
use articles_gateway::openapi::articles_document;

/// The article document with `json`, as a JSON value for easy probing.
fn articles_json(json: &JsonOptions) -> serde_json::Value {
    let doc = match articles_document(json) {
        Ok(doc) => doc,
        Err(e) => panic!("the embedded descriptors do not decode: {e}"),
    };
    to_value(&doc)
}

fn to_value(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    match serde_json::to_value(doc) {
        Ok(v) => v,
        Err(e) => panic!("the document does not serialize: {e}"),
    }
}
