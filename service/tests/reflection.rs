//! Server reflection (v1 and v1alpha) over real sockets: service listing, and descriptors
//! served byte for byte so the `google.api.http` options survive.

use crate::support::{Stack, TestDb};
use prost::Message as _;
use prost_reflect::{DescriptorPool, Value};

/// Re-wraps raw file descriptors into a set without re-encoding them.
#[derive(Clone, PartialEq, prost::Message)]
struct RawSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

macro_rules! ask {
    ($version:ident, $server:expr, $request:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new($server.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some($request),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection call")
            .into_inner();
        let response: Option<MessageResponse> = responses
            .message()
            .await
            .expect("reflection response")
            .expect("one response")
            .message_response;
        response.expect("message_response")
    }};
}

async fn server() -> (TestDb, Stack) {
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(0).start().await;
    (db, server)
}

fn assert_http_rule_survives(files: Vec<Vec<u8>>) {
    let pool = DescriptorPool::decode(RawSet { file: files }.encode_to_vec().as_slice())
        .expect("served descriptors decode");
    let service = pool
        .get_service_by_name("article.v1.ArticleService")
        .expect("service");
    let method = service
        .methods()
        .find(|m| m.name() == "ArticleList")
        .expect("ArticleList");
    let http = pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http extension");
    let options = method.options();
    assert!(
        options.has_extension(&http),
        "google.api.http option was dropped"
    );
    let rule = options.get_extension(&http);
    let Value::Message(rule) = rule.as_ref() else {
        panic!("HttpRule is a message, got {rule:?}");
    };
    assert_eq!(
        rule.get_field_by_name("get").as_deref(),
        Some(&Value::String("/articles".into()))
    );
}

#[tokio::test]
async fn v1_lists_article_health_and_reflection_services() {
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_db, server) = server().await;
    let MessageResponse::ListServicesResponse(list) =
        ask!(v1, server, MessageRequest::ListServices(String::new()))
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "article.v1.ArticleService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing in {names:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn v1_file_containing_symbol_keeps_the_google_api_http_option() {
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_db, server) = server().await;
    let MessageResponse::FileDescriptorResponse(files) = ask!(
        v1,
        server,
        MessageRequest::FileContainingSymbol("article.v1.ArticleService".into())
    ) else {
        panic!("expected files");
    };
    assert_http_rule_survives(files.file_descriptor_proto);
    // A method and a message resolve too.
    for symbol in [
        "article.v1.ArticleService.ArticleList",
        "article.v1.Article",
        "grpc.health.v1.HealthCheckRequest",
    ] {
        let response = ask!(
            v1,
            server,
            MessageRequest::FileContainingSymbol(symbol.into())
        );
        assert!(
            matches!(response, MessageResponse::FileDescriptorResponse(_)),
            "{symbol}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn v1_unknown_symbol_is_not_found_in_the_stream() {
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_db, server) = server().await;
    let MessageResponse::ErrorResponse(err) = ask!(
        v1,
        server,
        MessageRequest::FileContainingSymbol("no.Such".into())
    ) else {
        panic!("expected an error response");
    };
    assert_eq!(err.error_code, tonic::Code::NotFound as i32);
    server.stop().await;
}

#[tokio::test]
async fn v1_extension_queries_find_google_api_http() {
    use tonic_reflection::pb::v1::{
        ExtensionRequest, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    };
    let (_db, server) = server().await;
    let MessageResponse::AllExtensionNumbersResponse(numbers) = ask!(
        v1,
        server,
        MessageRequest::AllExtensionNumbersOfType("google.protobuf.MethodOptions".into())
    ) else {
        panic!("expected extension numbers");
    };
    assert!(numbers.extension_number.contains(&72_295_728));
    let MessageResponse::FileDescriptorResponse(_) = ask!(
        v1,
        server,
        MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: "google.protobuf.MethodOptions".into(),
            extension_number: 72_295_728,
        })
    ) else {
        panic!("expected files");
    };
    server.stop().await;
}

#[tokio::test]
async fn v1alpha_serves_the_same_descriptors() {
    use tonic_reflection::pb::v1alpha::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_db, server) = server().await;
    let MessageResponse::ListServicesResponse(list) =
        ask!(v1alpha, server, MessageRequest::ListServices(String::new()))
    else {
        panic!("expected a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "article.v1.ArticleService")
    );
    let MessageResponse::FileDescriptorResponse(files) = ask!(
        v1alpha,
        server,
        MessageRequest::FileByFilename("article/v1/article.proto".into())
    ) else {
        panic!("expected files");
    };
    assert_http_rule_survives(files.file_descriptor_proto);
    server.stop().await;
}
