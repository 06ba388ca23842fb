//! REST in front of the real article service, three ways: the real binary's in-process mode
//! (`articles-service serve --rest`), the gateway library over a channel, and the gateway with
//! descriptors read by server reflection from the live service (the `google.api.http` rules
//! must survive our reflection). Each time the JSON must equal what gRPC answers.
//!
//! These tests live here rather than in the gateway crate because the service depends on the
//! gateway (for `--rest`); the gateway's own tests use a second, unrelated API.

use std::time::Duration;

use crate::support::{Stack, TestDb, article_pool, refused_addr, serve_router};
use articles_gateway::{Backend, GatewayBuilder, descriptors, json::JsonOptions, rules::Bindings};
use articles_proto::article::v1::{ArticleDetailRequest, ArticleListRequest};
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::{Value, json};

/// A generated message as the gateway writes it (default JSON options).
fn as_json(name: &str, message: &impl Message) -> Value {
    let desc = article_pool()
        .get_message_by_name(name)
        .expect("message in the pool");
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice()).expect("decode");
    dynamic
        .serialize_with_options(
            serde_json::value::Serializer,
            &JsonOptions::default().serialize_options(),
        )
        .expect("serialize")
}

async fn grpc_answers(url: &str) -> (Value, Value) {
    let mut client =
        articles_proto::article::v1::article_service_client::ArticleServiceClient::connect(
            url.to_owned(),
        )
        .await
        .expect("connect");
    let list = client
        .article_list(ArticleListRequest {
            page: 2,
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let detail = client
        .article_detail(ArticleDetailRequest { pk: 3 })
        .await
        .expect("detail")
        .into_inner();
    (
        as_json("article.v1.ArticleListResponse", &list),
        as_json("article.v1.ArticleDetailResponse", &detail),
    )
}

async fn get(url: String) -> (reqwest::StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("request");
    let status = r.status();
    (status, r.json().await.expect("JSON body"))
}

async fn assert_rest_equals_grpc(rest: &str, grpc: &str) {
    let (list, detail) = grpc_answers(grpc).await;
    assert_eq!(list["articles"].as_array().map(Vec::len), Some(5));
    let (status, body) = get(format!("{rest}/articles?page=2&page_size=5")).await;
    assert_eq!(status, 200);
    assert_eq!(body, list);
    let (status, body) = get(format!("{rest}/articles/3")).await;
    assert_eq!(status, 200);
    assert_eq!(body, detail);
}

#[tokio::test]
async fn serve_with_rest_answers_rest_and_grpc_from_one_process() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(12).rest().start().await;
    let rest = service.rest_url();
    assert_rest_equals_grpc(&rest, &service.url()).await;

    let (status, body) = get(format!("{rest}/articles/99999")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code": 5, "message": "article 99999 not found", "details": []})
    );
    let (status, body) = get(format!("{rest}/articles?page=-1")).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
    let (status, _) = get(format!("{rest}/readyz")).await;
    assert_eq!(status, 200);
    let (status, spec) = get(format!("{rest}/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let docs = reqwest::get(format!("{rest}/docs/")).await.expect("docs");
    assert_eq!(docs.status(), 200);

    // Writes over REST meet the service's token rule, forwarded from the Authorization header.
    let client = reqwest::Client::new();
    let post = |auth: Option<&str>| {
        let mut req = client
            .post(format!("{rest}/articles"))
            .json(&json!({"title": "Over REST", "content": "In one process."}));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    assert_eq!(post(None).await.expect("post").status(), 401);
    assert_eq!(
        post(Some("Bearer wrong")).await.expect("post").status(),
        403
    );
    let created = post(Some(&format!("Bearer {}", crate::support::TOKEN)))
        .await
        .expect("post");
    // 201 Created, at its own URL: the proto's `openapiv2_operation` and the service's
    // `location` metadata.
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/articles/13");
    assert!(created.headers().get("grpc-metadata-location").is_none());
    let created: Value = created.json().await.expect("JSON");
    assert_eq!(created["article"]["id"], 13);
    assert_eq!(created["article"]["title"], "Over REST");
    service.stop().await;
}

#[tokio::test]
async fn the_gateway_over_a_channel_answers_exactly_what_grpc_answers() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(12).gateway().start().await;
    assert_rest_equals_grpc(&service.rest_url(), &service.url()).await;
    service.stop().await;
}

#[tokio::test]
async fn descriptors_reflected_from_the_live_service_keep_the_http_rules() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(12).start().await;
    let backend = Backend::connect_lazy(&service.url(), Duration::from_secs(1)).expect("backend");
    let pool = descriptors::from_reflection(&backend)
        .await
        .expect("reflection");
    let routes: Vec<String> = Bindings::from_pool(&pool)
        .bindings
        .iter()
        .map(|b| format!("{} {}", b.http_method, b.template))
        .collect();
    assert_eq!(
        routes,
        [
            "GET /articles",
            "GET /articles:export",
            "GET /articles:watch",
            "GET /articles/{pk}",
            "POST /articles",
            "PATCH /articles/{pk}",
            "PUT /articles/{pk}",
            "DELETE /articles/{pk}",
        ]
    );
    // grpc-gateway's openapiv2 options survive too: the document built from the reflected
    // descriptors is the one built from the embedded ones (license, examples and all).
    let reflected =
        articles_gateway::openapi::to_pretty_json(&articles_gateway::openapi::document(
            &Bindings::from_pool(&pool),
            &JsonOptions::default(),
            articles_service::server::api_info(),
        ));
    let embedded = articles_gateway::openapi::to_pretty_json(&articles_gateway::openapi::document(
        &Bindings::from_pool(&article_pool()),
        &JsonOptions::default(),
        articles_service::server::api_info(),
    ));
    assert!(reflected.contains("\"identifier\": \"MIT OR Apache-2.0\""));
    assert!(
        reflected == embedded,
        "the reflected descriptors lost something"
    );
    let router = GatewayBuilder::new()
        .descriptors(pool)
        .backend(backend)
        .build()
        .expect("gateway");
    let (rest, _stop) = serve_router(router).await;
    assert_rest_equals_grpc(&rest, &service.url()).await;
    service.stop().await;
}

#[tokio::test]
async fn reflect_reads_descriptors_from_the_first_replica_that_answers() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(1).start().await;
    let (_refusing, dead) = refused_addr();
    let dead = format!("http://{dead}");
    let cli = <articles_gateway::config::Cli as clap::Parser>::try_parse_from([
        "articles-gateway",
        "--reflect",
        "--backend",
        &dead,
        "--backend",
        &service.url(),
    ])
    .expect("gateway flags");
    let backend = Backend::balanced(
        &cli.serve.api.backends,
        &articles_gateway::BalanceOptions {
            health_interval: Duration::from_millis(200),
            ..articles_gateway::BalanceOptions::default()
        },
    )
    .expect("balanced backend");
    backend.health_checked().await;
    let pool = articles_gateway::server::load_descriptors(&cli.serve.api, None, &backend)
        .await
        .expect("descriptors by reflection");
    assert!(
        pool.get_service_by_name("article.v1.ArticleService")
            .is_some()
    );
    assert_eq!(Bindings::from_pool(&pool).bindings.len(), 8);
    service.stop().await;
}

/// 100,000 articles of about 170 bytes of JSON each: 17 MB of NDJSON, far more than the
/// growth allowed below, so a gateway or service holding the export would fail the test.
const EXPORT_ROWS: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_a_large_table_in_id_order_in_constant_memory() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(0).rest().start().await;
    let rest = service.rest_url();
    // Test data, not writes to watch: without the event triggers (migration 0003), whose
    // 100,000 events the export never reads but whose pages would add SQLite cache noise to
    // what this test measures.
    db.exec("DROP TRIGGER article_event_insert").await;
    db.exec(&format!(
        "INSERT INTO article_article (title, content, create_time) \
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {EXPORT_ROWS}) \
         SELECT 'article ' || x, printf('%.100c', 'x'), '2026-01-01 00:00:00' FROM n"
    ))
    .await;
    // One short export first: what the first call of a process allocates once (the
    // allocator's caches, compiled validation rules, connection buffers) is not the stream's.
    let warm = reqwest::get(format!(
        "{rest}/articles:export?after_id={}",
        EXPORT_ROWS - 100
    ))
    .await
    .expect("warm-up export");
    assert_eq!(
        warm.text().await.expect("warm-up body").lines().count(),
        100
    );
    let before = service.rss_kib();
    let mut response = reqwest::get(format!("{rest}/articles:export"))
        .await
        .expect("export");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let (mut count, mut last_id, mut peak) = (0i64, 0i64, 0u64);
    // RSS every 10,000 rows: a stream that buffered would keep growing with the rows.
    let mut samples: Vec<u64> = Vec::new();
    let mut pending = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Value = serde_json::from_slice(&pending[..end]).expect("an NDJSON line");
            pending.drain(..=end);
            let id = line["result"]["id"].as_i64().expect("an id");
            assert!(id > last_id, "ids ascend: {id} after {last_id}");
            last_id = id;
            count += 1;
            if count % 10_000 == 0 {
                let rss = service.rss_kib();
                samples.push(rss);
                peak = peak.max(rss);
            }
        }
    }
    assert!(pending.is_empty(), "a partial last line");
    assert_eq!(count, EXPORT_ROWS);
    let growth = peak.saturating_sub(before);
    eprintln!("export RSS: {before} KiB before, {peak} KiB at most, by 10,000 rows: {samples:?}");
    // The allocator's per-thread caches fill once (mimalloc keeps about 12 MiB here); the
    // rows themselves (100,000 of about 230 bytes: 23 MB) must not be held.
    assert!(
        growth < 20 * 1024,
        "RSS grew {growth} KiB while exporting ({before} KiB before, {peak} KiB at most)"
    );
    let settled = samples.get(2).copied().unwrap_or(before);
    let late = samples.iter().skip(5).copied().max().unwrap_or(settled);
    assert!(
        late.saturating_sub(settled) < 4 * 1024,
        "RSS kept growing over the second half of the export: {samples:?} KiB"
    );

    // Resuming after an id, and a negative one refused.
    let r = reqwest::get(format!(
        "{rest}/articles:export?after_id={}",
        EXPORT_ROWS - 2
    ))
    .await
    .expect("export");
    let text = r.text().await.expect("body");
    assert_eq!(text.lines().count(), 2, "{text}");
    let r = reqwest::get(format!("{rest}/articles:export?after_id=-1"))
        .await
        .expect("export");
    assert_eq!(r.status(), 400);
    service.stop().await;
}

#[tokio::test]
async fn the_in_process_rest_takes_the_gateway_flags() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db)
        .demo(3)
        .rest()
        .process(&[
            "--error-format",
            "problem",
            "--body-limit",
            "100",
            "--cors-origin",
            "https://app.example",
        ])
        .start()
        .await;
    let rest = service.rest_url();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{rest}/articles/999"))
        .header("origin", "https://app.example")
        .send()
        .await
        .expect("detail");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["status"], 404);
    let r = client
        .post(format!("{rest}/articles"))
        .header("authorization", format!("Bearer {}", crate::support::TOKEN))
        .json(&json!({"title": "t", "content": "x".repeat(200)}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 413);
    service.stop().await;
}

/// Issue 21, finding 16: a write without a token to `serve --rest` had its body read,
/// decompressed and transcoded by the in-process gateway, only for the write guard to refuse it
/// from the headers it had from the start. The guard now answers before the body is read.
#[tokio::test]
async fn a_rest_write_without_a_token_is_refused_before_its_body_is_read_or_decompressed() {
    use http_body_util::BodyExt as _;
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(0).rest().start().await;
    let rest = service.rest_url();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<
        tokio_stream::wrappers::ReceiverStream<
            Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
        >,
    >>();
    // The start of a gzip stream, and then nothing: a server that read the body before
    // authorizing would wait for the rest.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(&[
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff,
    ]))))
    .await
    .expect("send");
    let request = http::Request::post(format!("{rest}/articles"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("answered before the body")
        .expect("response");
    assert_eq!(response.status(), 401);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!(body["code"], 16, "{body}");
    drop(tx);
    // Reads need no token and are served as before.
    let r = reqwest::get(format!("{rest}/articles"))
        .await
        .expect("list");
    assert_eq!(r.status(), 200);
    service.stop().await;
}

/// Issue 21, finding 14: `page` with `page_token` was a 400 the OpenAPI document did not
/// state (schemathesis's stateful phase follows `next_page_token` links with a `page` still
/// set). As the proto documents it now, the token wins and the page is ignored.
#[tokio::test]
async fn a_page_token_sent_with_a_page_wins_and_the_page_is_ignored() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(0).rest().start().await;
    let rest = service.rest_url();
    db.exec(
        "INSERT INTO article_article (title, content, create_time) \
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) \
         SELECT 'a' || x, 'c', '2026-01-01 00:00:00' FROM n",
    )
    .await;
    let list = |query: &str| {
        let url = format!("{rest}/articles?{query}");
        async move {
            let response = reqwest::get(url).await.expect("list");
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON page");
            (status, body)
        }
    };
    let (status, first) = list("page=1&page_size=2").await;
    assert_eq!(status, 200, "{first}");
    let token = first["next_page_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    // Page 3 would be [5]; the token says [3, 4], and wins, with any page number.
    for page in ["0", "1", "3", "2147483647"] {
        let (status, body) = list(&format!("page={page}&page_size=2&page_token={token}")).await;
        assert_eq!(status, 200, "page={page}: {body}");
        let ids: Vec<i64> = body["articles"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
            .unwrap_or_default();
        assert_eq!(ids, [3, 4], "page={page}");
        assert_eq!(body["next_page"], 0, "no page number follows a token");
    }
    // A negative page is still refused, token or not: the schema says so.
    let (status, _) = list(&format!("page=-1&page_token={token}")).await;
    assert_eq!(status, 400);
    service.stop().await;
}

/// Issue 11, finding 8: five articles of 1,040,000 characters (each under the body limit)
/// made their page 400 OUT_OF_RANGE at the gateway, for ever. A page is now cut to what one
/// gRPC message carries, and its `next_page_token` reaches the rest.
#[tokio::test]
async fn a_page_larger_than_a_message_is_cut_and_its_token_reaches_the_rest() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db).demo(0).rest().start().await;
    let rest = service.rest_url();
    db.exec(
        "INSERT INTO article_article (title, content, create_time) \
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 7) \
         SELECT 'big ' || x, printf('%.1040000c', 'x'), '2026-01-01 00:00:00' FROM n",
    )
    .await;
    let list = |query: String| {
        let url = format!("{rest}/articles?{query}");
        async move {
            let response = reqwest::get(url).await.expect("list");
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON page");
            (status, body)
        }
    };
    let ids = |page: &Value| -> Vec<i64> {
        page["articles"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
            .unwrap_or_default()
    };

    let (status, first) = list("page=1&page_size=10".into()).await;
    assert_eq!(status, 200, "{}", first["message"]);
    assert_eq!(
        ids(&first),
        [1, 2, 3, 4],
        "four of 1,040,000 bytes fit 4 MiB"
    );
    assert_eq!(first["total"], 7);
    assert_eq!(first["next_page"], 0, "no page 2 of size 10 in 7 rows");
    let mut seen = ids(&first);
    let mut token = first["next_page_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    // Bounded: seven rows, at least one per page.
    for _ in 0..7 {
        let (status, page) = list(format!("page_size=10&page_token={token}")).await;
        assert_eq!(status, 200, "{}", page["message"]);
        seen.extend(ids(&page));
        match page["next_page_token"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_owned(),
            _ => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7], "every row once, in order");

    // A token this service did not issue is the client's mistake: 400, naming the field.
    let (status, body) = list("page_token=bm9wZQ".into()).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("page_token ")),
        "{body}"
    );
    service.stop().await;
}
