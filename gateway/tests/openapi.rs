//! Tests of the OpenAPI document and the served docs (one test binary; see `Cargo.toml`).
//!
//! - `openapi_accounts`: `buf.validate` rules stated as JSON Schema keywords
//!   (tests/fixtures/accounts.proto).
//! - `openapi_articles`: the document of the article contract.
//! - `openapi_library`: a second, unrelated API compiled here, exercising what the article
//!   contract does not (resource-name templates, body fields, `response_body`, nested and
//!   recursive messages, enums, 64-bit integers, well-known types).
//! - `openapi_docs`: `/openapi.json` and Swagger UI served over HTTP.
//! - `openapi_drift`: the committed `openapi/articles.openapi.json` is up to date.
//! - `openapi_openapiv2`: an API written for grpc-gateway's protoc-gen-openapiv2
//!   (`tests/fixtures/petstore.proto`): what its `openapiv2` options say is in the document.

mod openapi_accounts;
mod openapi_articles;
mod openapi_docs;
mod openapi_drift;
mod openapi_library;
mod openapi_openapiv2;

use articles_gateway::json::JsonOptions;
use articles_gateway::openapi::{ApiInfo, document};
use articles_gateway::rules::Bindings;

/// The article contract's document with `json`, titled as the `articles-gateway` binary titles
/// it (the article defaults are the binary's, not the library's; `openapi_drift` checks the
/// binary's own output).
fn articles_document(
    json: &JsonOptions,
) -> Result<utoipa::openapi::OpenApi, prost_reflect::DescriptorError> {
    let pool = prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)?;
    let info = ApiInfo {
        title: "articles".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..ApiInfo::default()
    };
    Ok(document(&Bindings::from_pool(&pool), json, info))
}

/// The article document with `json`, as a JSON value for easy probing.
fn articles_json(json: &JsonOptions) -> serde_json::Value {
    let doc = match articles_document(json) {
        Ok(doc) => doc,
        Err(e) => panic!("the embedded descriptors do not decode: {e}"),
    };
    to_value(&doc)
}

/// `tests/fixtures/<proto>` and its imports as an encoded descriptor set with comments, as
/// `buf build` writes one (protox's own bytes, so the options survive).
fn fixture_bytes(proto: &str) -> Vec<u8> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut compiler =
        match protox::Compiler::new([manifest.join("tests/fixtures"), manifest.join("../proto")]) {
            Ok(c) => c,
            Err(e) => panic!("protox: {e}"),
        };
    compiler.include_imports(true).include_source_info(true);
    if let Err(e) = compiler.open_file(proto) {
        panic!("compiling {proto}: {e}");
    }
    compiler.encode_file_descriptor_set()
}

/// The document of `tests/fixtures/<proto>` with default JSON options, titled by `info`.
fn fixture_document(proto: &str, info: ApiInfo) -> utoipa::openapi::OpenApi {
    let pool = match prost_reflect::DescriptorPool::decode(fixture_bytes(proto).as_slice()) {
        Ok(p) => p,
        Err(e) => panic!("decoding the descriptors of {proto}: {e}"),
    };
    document(&Bindings::from_pool(&pool), &JsonOptions::default(), info)
}

fn to_value(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    match serde_json::to_value(doc) {
        Ok(v) => v,
        Err(e) => panic!("the document does not serialize: {e}"),
    }
}
