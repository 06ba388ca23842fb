//! The document of a second, unrelated API, compiled here with protox: the generator must be
//! generic, not shaped after the article contract.

use articles_gateway::json::JsonOptions;
use articles_gateway::openapi::{ApiInfo, document};
use articles_gateway::rules::Bindings;
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};

use super::to_value;

const LIBRARY_PROTO: &str = r#"
syntax = "proto3";

package library.v1;

import "google/api/annotations.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

// Kinds of books.
enum Genre {
  // Not known.
  GENRE_UNSPECIFIED = 0;
  // Made-up stories.
  FICTION = 1;
  NONFICTION = 2;
}

// A shelf of books.
message Shelf {
  // The resource name, `shelves/{shelf}`.
  string name = 1;
  // What the shelf holds.
  Genre genre = 2;
}

// A book.
message Book {
  // The resource name, `shelves/{shelf}/books/{book}`.
  string name = 1;
  string title = 2;
  // How many pages.
  int64 page_count = 3;
  repeated string authors = 4;
  google.protobuf.Timestamp publish_time = 5;
  Genre genre = 6;
  // From 1 to 5; absent when nobody rated the book.
  google.protobuf.Int32Value rating = 7;
  map<string, string> labels = 8;
  // The next book of the series.
  Book sequel = 9;
  oneof availability {
    bool in_stock = 10;
    string lent_to = 11;
  }
  double price = 12;
  bytes cover = 13;
  uint64 isbn = 14;
  map<int32, Shelf> seen_on = 15;
}

// What to list.
message Filter {
  // Books by this author only.
  string author = 1;
  google.protobuf.Timestamp published_after = 2;
  // Recursive: not expressible as query parameters.
  Filter and = 3;
  repeated Book books = 4;
}

message GetShelfRequest {
  string name = 1;
}

message ListBooksRequest {
  string parent = 1;
  int32 page_size = 2;
  Filter filter = 3;
  repeated Genre genres = 4;
  repeated int64 ids = 5;
  map<string, string> tags = 6;
}

message ListBooksResponse {
  repeated Book books = 1;
  string next_page_token = 2;
}

message CreateBookRequest {
  string parent = 1;
  Book book = 2;
}

message UpdateBookRequest {
  Book book = 1;
  google.protobuf.FieldMask update_mask = 2;
}

message MoveBookRequest {
  string name = 1;
  // Where to move the book.
  string other_shelf_name = 2;
}

message MoveBookResponse {
  Book book = 1;
  int32 moves = 2;
}

// Shelves and their books.
service LibraryService {
  // Gets a shelf.
  //
  // Longer explanation.
  rpc GetShelf(GetShelfRequest) returns (Shelf) {
    option (google.api.http) = {get: "/v1/{name=shelves/*}"};
  }
  // Lists books.
  rpc ListBooks(ListBooksRequest) returns (ListBooksResponse) {
    option (google.api.http) = {get: "/v1/{parent=shelves/*}/books"};
  }
  rpc CreateBook(CreateBookRequest) returns (Book) {
    option (google.api.http) = {post: "/v1/{parent=shelves/*}/books" body: "book"};
  }
  rpc UpdateBook(UpdateBookRequest) returns (Book) {
    option (google.api.http) = {patch: "/v1/{book.name=shelves/*/books/*}" body: "book"};
  }
  rpc MoveBook(MoveBookRequest) returns (MoveBookResponse) {
    option (google.api.http) = {
      post: "/v1/{name=shelves/*/books/*}:move"
      body: "*"
      response_body: "book"
    };
  }
}
"#;

fn library_doc() -> Value {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let proto_dir = dir.path().join("library/v1");
    let written = std::fs::create_dir_all(&proto_dir)
        .and_then(|()| std::fs::write(proto_dir.join("library.proto"), LIBRARY_PROTO));
    if let Err(e) = written {
        panic!("writing the proto: {e}");
    }
    // google/api/*.proto come from the repository; google/protobuf/* are built into protox.
    let repo_protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let bytes = match protox::Compiler::new([dir.path(), repo_protos.as_path()]) {
        Ok(mut compiler) => {
            compiler.include_imports(true).include_source_info(true);
            if let Err(e) = compiler.open_files(["library/v1/library.proto"]) {
                panic!("compiling the library proto: {e}");
            }
            // Encoded by protox itself, so the google.api.http options survive.
            compiler.encode_file_descriptor_set()
        }
        Err(e) => panic!("protox: {e}"),
    };
    let pool = match DescriptorPool::decode(bytes.as_slice()) {
        Ok(p) => p,
        Err(e) => panic!("decoding: {e}"),
    };
    let bindings = Bindings::from_pool(&pool);
    assert!(bindings.skipped.is_empty(), "{:?}", bindings.skipped);
    let info = ApiInfo {
        title: "library".to_owned(),
        version: "1.0.0".to_owned(),
        ..ApiInfo::default()
    };
    let doc = document(&bindings, &JsonOptions::default(), info);
    // For checking with an external validator: the written file is this API's document.
    if let Some(out) = std::env::var_os("OPENAPI_LIBRARY_OUT")
        && let Err(e) = std::fs::write(&out, articles_gateway::openapi::to_pretty_json(&doc))
    {
        panic!("writing {out:?}: {e}");
    }
    to_value(&doc)
}

fn param<'a>(op: &'a Value, name: &str) -> Option<&'a Value> {
    op["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

/// The operation's parameters, less those every operation has (`fields`, `X-Goog-FieldMask`)
/// and those of every unary GET (`If-None-Match`): the method's own.
fn param_names(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .filter(|n| !["fields", "X-Goog-FieldMask", "If-None-Match"].contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn resource_name_templates_become_constrained_path_parameters() {
    let doc = library_doc();
    let get = &doc["paths"]["/v1/{name}"]["get"];
    assert_eq!(get["operationId"], "GetShelf");
    assert_eq!(get["summary"], "Gets a shelf.");
    assert!(
        get["description"]
            .as_str()
            .is_some_and(|d| d.contains("Longer explanation."))
    );
    let name = param(get, "name");
    assert_eq!(
        name.map(|p| &p["schema"]),
        Some(&json!({
            "type": "string",
            "pattern": "^shelves/[^/]+$",
            "description": "Matches `shelves/*`; the `/` between its segments are part of the path.",
        }))
    );
    assert_eq!(name.map(|p| &p["required"]), Some(&json!(true)));

    let update = &doc["paths"]["/v1/{book.name}"]["patch"];
    assert_eq!(
        param(update, "book.name").map(|p| &p["schema"]["pattern"]),
        Some(&json!("^shelves/[^/]+/books/[^/]+$"))
    );
    // The body is `book`; what is left goes to the query.
    assert_eq!(param_names(update), ["book.name", "update_mask"]);

    assert!(doc["paths"]["/v1/{name}:move"]["post"].is_object());
    assert_eq!(doc["tags"][0]["name"], "LibraryService");
    assert_eq!(doc["tags"][0]["description"], "Shelves and their books.");
}

#[test]
fn query_parameters_flatten_nested_messages_and_skip_what_a_url_cannot_carry() {
    let doc = library_doc();
    let list = &doc["paths"]["/v1/{parent}/books"]["get"];
    assert_eq!(
        param_names(list),
        [
            "parent",
            "page_size",
            "filter.author",
            "filter.published_after",
            "genres",
            "ids"
        ]
    );
    let after = param(list, "filter.published_after");
    assert_eq!(
        after.map(|p| &p["schema"]["format"]),
        Some(&json!("date-time"))
    );
    let genres = param(list, "genres");
    assert_eq!(genres.map(|p| &p["explode"]), Some(&json!(true)));
    assert_eq!(genres.map(|p| &p["style"]), Some(&json!("form")));
    assert_eq!(
        genres.map(|p| &p["schema"]["items"]["enum"]),
        Some(&json!(["GENRE_UNSPECIFIED", "FICTION", "NONFICTION"]))
    );
    assert_eq!(
        param(list, "ids").map(|p| &p["schema"]["items"]["type"]),
        Some(&json!("string"))
    );
    assert_eq!(
        param(list, "filter.author").map(|p| &p["description"]),
        Some(&json!("Books by this author only."))
    );
}

#[test]
fn body_fields_and_response_bodies_use_the_field_schemas() {
    let doc = library_doc();
    let create = &doc["paths"]["/v1/{parent}/books"]["post"];
    // Book is also a response: its request form is a separate component.
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Book-Input"})
    );
    assert_eq!(
        create["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/Book"})
    );

    let mv = &doc["paths"]["/v1/{name}:move"]["post"];
    assert_eq!(
        mv["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Book"
    );
    // `body: "*"` less the path's `name`: a component of its own.
    assert_eq!(
        mv["requestBody"]["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/MoveBookRequest-Body"})
    );
    let body = &doc["components"]["schemas"]["MoveBookRequest-Body"];
    assert_eq!(
        body["properties"],
        json!({"other_shelf_name": {
            "type": "string",
            "description": "Where to move the book.",
            "examples": ["other_shelf_name"],
        }})
    );
    // Nothing in it is REQUIRED, so an empty body is fine: not a required body.
    assert!(mv["requestBody"].get("required").is_none());
    assert_eq!(body["additionalProperties"], false);
    assert!(param_names(mv) == ["name"], "{:?}", param_names(mv));
}

#[test]
fn message_components_follow_the_proto3_json_mapping() {
    let doc = library_doc();
    let schemas = &doc["components"]["schemas"];
    let book = &schemas["Book"];
    let props = &book["properties"];
    assert_eq!(props["page_count"]["type"], "string");
    assert_eq!(props["page_count"]["format"], "int64");
    assert_eq!(props["isbn"]["format"], "uint64");
    assert_eq!(props["publish_time"]["format"], "date-time");
    assert_eq!(props["rating"]["type"], json!(["integer", "null"]));
    assert_eq!(props["authors"]["items"]["type"], "string");
    assert_eq!(props["labels"]["additionalProperties"]["type"], "string");
    assert_eq!(
        props["seen_on"]["additionalProperties"]["$ref"],
        "#/components/schemas/Shelf"
    );
    assert_eq!(props["seen_on"]["propertyNames"]["pattern"], "^-?[0-9]+$");
    assert_eq!(props["sequel"]["$ref"], "#/components/schemas/Book");
    assert_eq!(props["genre"]["$ref"], "#/components/schemas/Genre");
    assert_eq!(props["cover"]["format"], "byte");
    assert_eq!(props["price"]["oneOf"][0]["format"], "double");
    assert!(
        props["in_stock"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("`in_stock`, `lent_to`"))
    );
    // Written always: fields without presence. Messages, wrappers and oneofs only when set.
    assert_eq!(
        book["required"],
        json!([
            "name",
            "title",
            "page_count",
            "authors",
            "genre",
            "labels",
            "price",
            "cover",
            "isbn",
            "seen_on"
        ])
    );

    let input = &schemas["Book-Input"];
    assert_eq!(input["additionalProperties"], false);
    assert!(input.get("required").is_none());
    assert_eq!(
        input["properties"]["page_count"]["type"],
        json!(["string", "integer"])
    );
    // A message field has presence: in a request, `null` reads as "not set".
    assert_eq!(
        input["properties"]["sequel"],
        json!({
            "oneOf": [{"$ref": "#/components/schemas/Book-Input"}, {"type": "null"}],
            "description": "The next book of the series.",
        })
    );
    assert_eq!(
        input["properties"]["publish_time"]["type"],
        json!(["string", "null"])
    );
    // Not in a response, which never holds `null`.
    assert_eq!(props["publish_time"]["type"], "string");

    let genre = &schemas["Genre"];
    assert_eq!(
        genre["enum"],
        json!(["GENRE_UNSPECIFIED", "FICTION", "NONFICTION"])
    );
    assert!(
        genre["description"]
            .as_str()
            .is_some_and(|d| d.contains("- `FICTION`: Made-up stories."))
    );
    // The request-only messages of path-bound bodies and the query are not components.
    assert!(schemas["MoveBookRequest"].is_null());
    assert!(schemas["ListBooksRequest"].is_null());
}

/// Two packages with a message, an enum and a service of the same names, and one message
/// named like the error schema.
const SHOP_PROTO: &str = r#"
syntax = "proto3";
package shop.PACKAGE;
import "google/api/annotations.proto";
enum Kind { KIND_UNSPECIFIED = 0; }
message Item {
  string id = 1; Kind kind = 2; Item.Part part = 3; optional string note = 4;
  message Part { string name = 1; }
}
message Status { string note = 1; }
message OnlyHere { Status status = 1; }
service Catalog {
  rpc GetItem(Item) returns (Item) { option (google.api.http) = { get: "/PACKAGE/items/{id}" }; }
  rpc Check(Item) returns (OnlyHere) { option (google.api.http) = { get: "/PACKAGE/check/{id}" }; }
  rpc Annotate(Item) returns (Item) {
    option (google.api.http) = { post: "/PACKAGE/items/{id}:annotate" body: "*" };
  }
}
"#;

/// The document of the shop packages in `files` (`a`, `b`).
fn shop_doc(packages: &[&str]) -> Value {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    for package in packages {
        let written = std::fs::create_dir_all(dir.path().join("shop")).and_then(|()| {
            std::fs::write(
                dir.path().join(format!("shop/{package}.proto")),
                SHOP_PROTO.replace("PACKAGE", package),
            )
        });
        if let Err(e) = written {
            panic!("writing the proto: {e}");
        }
    }
    let repo_protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let files: Vec<String> = packages.iter().map(|p| format!("shop/{p}.proto")).collect();
    let bytes = match protox::Compiler::new([dir.path(), repo_protos.as_path()]) {
        Ok(mut compiler) => {
            compiler.include_imports(true);
            if let Err(e) = compiler.open_files(&files) {
                panic!("compiling: {e}");
            }
            compiler.encode_file_descriptor_set()
        }
        Err(e) => panic!("protox: {e}"),
    };
    let pool = match DescriptorPool::decode(bytes.as_slice()) {
        Ok(p) => p,
        Err(e) => panic!("decoding: {e}"),
    };
    let info = ApiInfo {
        title: "shop".to_owned(),
        version: "1".to_owned(),
        ..ApiInfo::default()
    };
    to_value(&document(
        &Bindings::from_pool(&pool),
        &JsonOptions::default(),
        info,
    ))
}

fn schema_and_tag_names(doc: &Value) -> (Vec<String>, Vec<String>) {
    let mut schemas: Vec<String> = doc["components"]["schemas"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    schemas.sort_unstable();
    let tags = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (schemas, tags)
}

#[test]
fn components_and_tags_take_short_names_unless_two_packages_share_one() {
    let (schemas, tags) = schema_and_tag_names(&shop_doc(&["a"]));
    assert_eq!(
        schemas,
        [
            "Item",
            "Item-Body",
            "Item.Part",
            "Item.Part-Input",
            "Kind",
            "OnlyHere",
            "Status",
            "shop.a.Status"
        ],
        "short names; the message named `Status` leaves that name to the error schema"
    );
    assert_eq!(tags, ["Catalog"]);
    // proto3 `optional` in a request body may be `null` (read as not set); others may not.
    let doc = shop_doc(&["a"]);
    let body = &doc["components"]["schemas"]["Item-Body"]["properties"];
    assert_eq!(body["note"]["type"], json!(["string", "null"]), "{body}");
    assert!(body["kind"]["$ref"].is_string(), "{body}");

    let (schemas, tags) = schema_and_tag_names(&shop_doc(&["a", "b"]));
    assert_eq!(
        schemas,
        [
            "Status",
            "shop.a.Item",
            "shop.a.Item-Body",
            "shop.a.Item.Part",
            "shop.a.Item.Part-Input",
            "shop.a.Kind",
            "shop.a.OnlyHere",
            "shop.a.Status",
            "shop.b.Item",
            "shop.b.Item-Body",
            "shop.b.Item.Part",
            "shop.b.Item.Part-Input",
            "shop.b.Kind",
            "shop.b.OnlyHere",
            "shop.b.Status",
        ],
        "names two packages share are qualified"
    );
    assert_eq!(tags, ["shop.a.Catalog", "shop.b.Catalog"]);
}
