//! End to end with the real article service: the gateway's JSON equals what the gRPC methods
//! answer, over a channel, in memory, and with descriptors read by server reflection.

use std::time::Duration;

use articles_gateway::{Backend, Gateway, descriptors, json::JsonOptions, rules::Bindings};
use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, article_service_client::ArticleServiceClient,
};
use articles_service::{config::Cli, server::App};
use clap::Parser;
use http::StatusCode;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot};

use crate::support::{json, send, spawn_gateway};

/// A running article service (SQLite in a temp dir, 12 demo articles) and its app.
struct Service {
    app: App,
    url: String,
    _dir: tempfile::TempDir,
    _shutdown: oneshot::Sender<()>,
}

async fn spawn_service() -> Service {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let db = format!("sqlite://{}", dir.path().join("articles.db").display());
    let cli = match Cli::try_parse_from([
        "articles-service",
        "--database-url",
        &db,
        "--demo-articles",
        "12",
    ]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let app = match App::open(&cli.serve).await {
        Ok(a) => a,
        Err(e) => panic!("opening the service: {e}"),
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}"),
        Err(e) => panic!("{e}"),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let served = app.clone();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = articles_service::server::serve(listener, served, shutdown).await {
            eprintln!("article service failed: {e}");
        }
    });
    Service {
        app,
        url,
        _dir: dir,
        _shutdown: tx,
    }
}

fn article_pool() -> DescriptorPool {
    match DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A generated message as the gateway would write it (default JSON options).
fn as_json(pool: &DescriptorPool, name: &str, message: &impl Message) -> serde_json::Value {
    let Some(desc) = pool.get_message_by_name(name) else {
        panic!("no {name}");
    };
    let dynamic = match DynamicMessage::decode(desc, message.encode_to_vec().as_slice()) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    match dynamic.serialize_with_options(
        serde_json::value::Serializer,
        &JsonOptions::default().serialize_options(),
    ) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

async fn grpc_answers(service: &Service) -> (serde_json::Value, serde_json::Value) {
    let pool = article_pool();
    let mut client = match ArticleServiceClient::connect(service.url.clone()).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let list = match client
        .article_list(ArticleListRequest {
            page: 2,
            page_size: 5,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => panic!("{e}"),
    };
    let detail = match client.article_detail(ArticleDetailRequest { pk: 3 }).await {
        Ok(r) => r.into_inner(),
        Err(e) => panic!("{e}"),
    };
    (
        as_json(&pool, "article.v1.ArticleListResponse", &list),
        as_json(&pool, "article.v1.ArticleDetailResponse", &detail),
    )
}

async fn assert_same_as_grpc(service: &Service, gateway_url: impl Fn(&str) -> String) {
    let (list, detail) = grpc_answers(service).await;
    assert_eq!(list["articles"].as_array().map(Vec::len), Some(5));
    let client = reqwest::Client::new();
    let r = send(client.get(gateway_url("/articles?page=2&page_size=5"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await, list);
    let r = send(client.get(gateway_url("/articles/3"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await, detail);
}

#[tokio::test]
async fn article_routes_answer_exactly_what_grpc_answers() {
    let service = spawn_service().await;
    let backend = match Backend::connect_lazy(&service.url, Duration::from_secs(1)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let router = match Gateway::builder()
        .descriptors(article_pool())
        .backend(backend)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    assert_same_as_grpc(&service, |p| gateway.url(p)).await;

    let client = reqwest::Client::new();
    let r = send(client.get(gateway.url("/articles/abc"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(r).await,
        json!({"code": 3, "message": "invalid value \"abc\" for path parameter \"pk\": expected int32", "details": []})
    );
    let r = send(client.get(gateway.url("/articles?page=abc"))).await;
    assert_eq!(
        json(r).await["message"],
        "invalid value \"abc\" for query parameter \"page\": expected int32"
    );
    let r = send(client.get(gateway.url("/articles/99999"))).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = send(client.get(gateway.url("/readyz"))).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_article_service_mounted_in_memory_answers_the_same() {
    let service = spawn_service().await;
    let router = match Gateway::builder()
        .descriptors(article_pool())
        .backend(Backend::from_service(service.app.routes()))
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    assert_same_as_grpc(&service, |p| gateway.url(p)).await;
}

#[tokio::test]
async fn reflection_against_the_live_service_finds_the_routes() {
    let service = spawn_service().await;
    let backend = match Backend::connect_lazy(&service.url, Duration::from_secs(1)) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let pool = match descriptors::from_reflection(&backend).await {
        Ok(p) => p,
        Err(e) => panic!("reflection: {e}"),
    };
    let routes: Vec<String> = Bindings::from_pool(&pool)
        .bindings
        .iter()
        .map(|b| format!("{} {}", b.http_method, b.template))
        .collect();
    for route in ["GET /articles", "GET /articles/{pk}", "POST /articles"] {
        assert!(
            routes.iter().any(|r| r == route),
            "{route} not in {routes:?}"
        );
    }
    let router = match Gateway::builder()
        .descriptors(pool)
        .backend(backend)
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let gateway = spawn_gateway(router).await;
    assert_same_as_grpc(&service, |p| gateway.url(p)).await;
}
