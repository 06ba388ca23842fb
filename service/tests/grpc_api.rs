//! The ArticleService over real sockets, on SQLite and (with `TEST_POSTGRES_URL`) PostgreSQL:
//! paging, details, writes, authorization, validation, the legacy path, health, id range,
//! startup seeding and foreign tables.

use crate::support::{Backend, Stack, TOKEN, TestDb};
use articles_proto::article::v1::{self as pb};
use tonic::{Code, Request};

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    req
}

fn list(page: i32, page_size: i32) -> pb::ArticleListRequest {
    pb::ArticleListRequest {
        page,
        page_size,
        ..Default::default()
    }
}

async fn paging_page_2_of_size_5_returns_ids_6_to_10(db: TestDb) {
    let server = Stack::on(&db).demo(50).start().await;
    let mut client = server.client().await;
    let resp = client
        .article_list(list(2, 5))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<i32> = resp.articles.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![6, 7, 8, 9, 10]);
    assert_eq!(resp.total, 50);
    assert_eq!(resp.next_page, 3);
    let a = &resp.articles[0];
    assert!(!a.title.is_empty() && a.content.len() > 100);
    assert_eq!(a.create_time.len(), 19, "{}", a.create_time);
    server.stop().await;
}

async fn paging_zero_means_first_page_of_ten(db: TestDb) {
    let server = Stack::on(&db).demo(50).start().await;
    let resp = server
        .client()
        .await
        .article_list(list(0, 0))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        resp.articles.iter().map(|a| a.id).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(resp.next_page, 2);
    server.stop().await;
}

async fn paging_clamps_page_size_to_100(db: TestDb) {
    let server = Stack::on(&db).demo(150).start().await;
    let mut client = server.client().await;
    let resp = client
        .article_list(list(1, 1000))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(resp.articles.len(), 100);
    assert_eq!(resp.total, 150);
    assert_eq!(resp.next_page, 2);
    let last = client
        .article_list(list(2, 1000))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(last.articles.len(), 50);
    assert_eq!(last.next_page, 0);
    server.stop().await;
}

async fn paging_past_the_end_is_empty_even_for_huge_pages(db: TestDb) {
    let server = Stack::on(&db).demo(12).start().await;
    let mut client = server.client().await;
    for page in [3, 1000, i32::MAX] {
        let resp = client
            .article_list(list(page, 100))
            .await
            .expect("list")
            .into_inner();
        assert!(resp.articles.is_empty(), "page {page}");
        assert_eq!(resp.total, 12);
        assert_eq!(resp.next_page, 0);
    }
    server.stop().await;
}

async fn paging_rejects_negative_values_naming_the_field(db: TestDb) {
    let server = Stack::on(&db).demo(3).start().await;
    let mut client = server.client().await;
    let err = client
        .article_list(list(-1, 5))
        .await
        .expect_err("negative page");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("page must not be negative"),
        "{}",
        err.message()
    );
    let err = client
        .article_list(list(1, -1))
        .await
        .expect_err("negative size");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "page_size must not be negative (got -1)");
    server.stop().await;
}

async fn detail_returns_the_article_or_not_found(db: TestDb) {
    let server = Stack::on(&db).demo(5).start().await;
    let mut client = server.client().await;
    let article = client
        .article_detail(pb::ArticleDetailRequest { pk: 3 })
        .await
        .expect("detail")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(article.id, 3);
    let err = client
        .article_detail(pb::ArticleDetailRequest { pk: 42 })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "article 42 not found");
    for pk in [0, -7] {
        let err = client
            .article_detail(pb::ArticleDetailRequest { pk })
            .await
            .expect_err("bad pk");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with("pk "), "{}", err.message());
    }
    server.stop().await;
}

async fn writes_with_a_valid_token_create_update_and_delete(db: TestDb) {
    let server = Stack::on(&db).demo(0).start().await;
    let mut client = server.client().await;
    let created = client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "Hello".into(),
                content: "World".into(),
            },
            TOKEN,
        ))
        .await
        .expect("create")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(created.id, 1);
    assert_eq!(created.title, "Hello");
    assert_eq!(created.create_time.len(), 19);

    let updated = client
        .update_article(authed(
            pb::UpdateArticleRequest {
                pk: 1,
                title: Some("Hello again".into()),
                content: None,
            },
            TOKEN,
        ))
        .await
        .expect("update")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(updated.title, "Hello again");
    assert_eq!(updated.content, "World");
    assert_eq!(updated.create_time, created.create_time);

    let unchanged = client
        .update_article(authed(
            pb::UpdateArticleRequest {
                pk: 1,
                title: None,
                content: None,
            },
            TOKEN,
        ))
        .await
        .expect("no-op update")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(unchanged, updated);

    let deleted = client
        .delete_article(authed(pb::DeleteArticleRequest { pk: 1 }, TOKEN))
        .await
        .expect("delete")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(deleted, updated);
    let err = client
        .article_detail(pb::ArticleDetailRequest { pk: 1 })
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .delete_article(authed(pb::DeleteArticleRequest { pk: 1 }, TOKEN))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await;
}

async fn writes_without_or_with_a_wrong_token_are_refused(db: TestDb) {
    let server = Stack::on(&db).demo(2).start().await;
    let mut client = server.client().await;
    let new = || pb::CreateArticleRequest {
        title: "t".into(),
        content: "c".into(),
    };
    let err = client.create_article(new()).await.expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client
        .create_article(authed(new(), "wrong"))
        .await
        .expect_err("wrong token");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .delete_article(authed(pb::DeleteArticleRequest { pk: 1 }, "wrong"))
        .await
        .expect_err("wrong token");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .update_article(pb::UpdateArticleRequest {
            pk: 1,
            title: Some("x".into()),
            content: None,
        })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 2);
    server.stop().await;
}

async fn writes_are_disabled_when_no_token_is_configured(db: TestDb) {
    let server = Stack::on(&db).demo(1).tokens(&[]).start().await;
    let mut client = server.client().await;
    let err = client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "t".into(),
                content: "c".into(),
            },
            TOKEN,
        ))
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("no API token is configured"),
        "{}",
        err.message()
    );
    // Reads stay public.
    client.article_list(list(1, 10)).await.expect("list");
    server.stop().await;
}

async fn invalid_writes_name_the_field_and_write_nothing(db: TestDb) {
    let server = Stack::on(&db).demo(1).start().await;
    let mut client = server.client().await;
    let cases = [
        (String::new(), "c".to_owned(), "title"),
        ("  ".to_owned(), "c".to_owned(), "title"),
        ("x".repeat(201), "c".to_owned(), "title"),
        ("ok".to_owned(), String::new(), "content"),
    ];
    for (title, content, field) in cases {
        let err = client
            .create_article(authed(pb::CreateArticleRequest { title, content }, TOKEN))
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    // 200 characters (multi-byte) are fine.
    client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "é".repeat(200),
                content: "c".into(),
            },
            TOKEN,
        ))
        .await
        .expect("200 chars");
    let err = client
        .update_article(authed(
            pb::UpdateArticleRequest {
                pk: 1,
                title: Some("x".repeat(201)),
                content: None,
            },
            TOKEN,
        ))
        .await
        .expect_err("invalid update");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("title"), "{}", err.message());
    let err = client
        .update_article(authed(
            pb::UpdateArticleRequest {
                pk: 0,
                title: None,
                content: None,
            },
            TOKEN,
        ))
        .await
        .expect_err("invalid pk");
    assert!(err.message().starts_with("pk"), "{}", err.message());
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 2);
    server.stop().await;
}

/// The gRPC answer to a request breaking the contract's rules carries a `google.rpc.BadRequest`
/// detail naming every broken field, as the gateway's 400 does.
async fn rule_violations_carry_a_bad_request_detail_for_grpc_callers(db: TestDb) {
    use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage};
    let server = Stack::on(&db).demo(1).start().await;
    let mut client = server.client().await;
    let err = client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "\u{3000}".into(),
                content: "x".repeat(4_186_113),
            },
            TOKEN,
        ))
        .await
        .expect_err("blank title, long content");
    assert_eq!(err.code(), Code::InvalidArgument);
    let pool = DescriptorPool::decode(articles_proto::STANDARD_DESCRIPTOR_SET).expect("pool");
    let status = pool
        .get_message_by_name("google.rpc.Status")
        .expect("Status");
    let status = DynamicMessage::decode(status, err.details()).expect("a google.rpc.Status");
    let details = status.get_field_by_name("details").expect("details");
    let details = details.as_list().expect("a list");
    assert_eq!(details.len(), 1);
    let any = details[0].as_message().expect("an Any");
    let type_url = any.get_field_by_name("type_url").expect("type_url");
    assert_eq!(
        type_url.as_str(),
        Some("type.googleapis.com/google.rpc.BadRequest")
    );
    let value = any.get_field_by_name("value").expect("value");
    let bad = pool
        .get_message_by_name("google.rpc.BadRequest")
        .expect("BadRequest");
    let bad =
        DynamicMessage::decode(bad, value.as_bytes().expect("bytes").as_ref()).expect("decode");
    assert_eq!(bad.descriptor().name(), "BadRequest");
    let json = serde_json::to_value(&bad).expect("json");
    let fields: Vec<&str> = json["fieldViolations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(|v| v["field"].as_str())
        .collect();
    assert_eq!(fields, ["title", "content"], "{json}");
    let message = err.message();
    assert!(message.starts_with("title "), "{message}");
    assert!(
        message.ends_with("; content must be at most 4186112 bytes of UTF-8 (got 4186113)"),
        "{message}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 1);
    server.stop().await;
}

async fn legacy_unpackaged_path_serves_article_list(db: TestDb) {
    let server = Stack::on(&db).demo(15).start().await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("ready");
    let codec =
        tonic_prost::ProstCodec::<pb::ArticleListRequest, pb::ArticleListResponse>::default();
    let resp = grpc
        .unary(
            Request::new(list(1, 10)),
            http::uri::PathAndQuery::from_static("/ArticleService/ArticleList"),
            codec,
        )
        .await
        .expect("legacy call")
        .into_inner();
    assert_eq!(resp.articles.len(), 10);
    assert_eq!(resp.total, 15);
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.expect("ready");
    let codec =
        tonic_prost::ProstCodec::<pb::ArticleDetailRequest, pb::ArticleDetailResponse>::default();
    let err = grpc
        .unary(
            Request::new(pb::ArticleDetailRequest { pk: 99 }),
            http::uri::PathAndQuery::from_static("/ArticleService/ArticleDetail"),
            codec,
        )
        .await
        .expect_err("not found");
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await;
}

async fn health_reports_serving(db: TestDb) {
    let server = Stack::on(&db).demo(0).start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for service in ["article.v1.ArticleService", ""] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(
            resp.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    server.stop().await;
}

async fn ids_beyond_int32_are_a_clear_error_and_create_rolls_back(db: TestDb) {
    let server = Stack::on(&db).demo(0).start().await;
    let ts = match db.backend {
        Backend::Sqlite => "'2026-01-02 03:04:05.123456'",
        Backend::Postgres => "'2026-01-02 03:04:05.123456+00'",
    };
    db.exec(&format!(
        "INSERT INTO article_article (id, title, content, create_time) VALUES (3000000000, 'big', 'x', {ts})"
    ))
    .await;
    if db.backend == Backend::Postgres {
        db.exec("SELECT setval(pg_get_serial_sequence('article_article', 'id'), 3000000000)")
            .await;
    }
    let mut client = server.client().await;
    let err = client
        .article_list(list(1, 10))
        .await
        .expect_err("out of range");
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.message(),
        "article id 3000000000 exceeds the int32 range of the ArticleService contract"
    );
    let err = client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "t".into(),
                content: "c".into(),
            },
            TOKEN,
        ))
        .await
        .expect_err("out of range");
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("3000000001"), "{}", err.message());
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 1);
    server.stop().await;
}

async fn demo_articles_are_seeded_only_into_a_new_table(db: TestDb) {
    let server = Stack::on(&db).demo(50).start().await;
    server.stop().await;
    let server = Stack::on(&db).demo(50).start().await;
    let resp = server
        .client()
        .await
        .article_list(list(1, 10))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(resp.total, 50);
    server.stop().await;
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 50);
}

async fn foreign_django_table_is_served_untouched(db: TestDb) {
    db.create_django_table().await;
    let ts = match db.backend {
        Backend::Sqlite => ["'2026-01-02 03:04:05.123456'", "'2026-01-03 00:00:00'"],
        Backend::Postgres => [
            "'2026-01-02 03:04:05.123456+00'",
            "'2026-01-03 02:00:00+02'",
        ],
    };
    db.exec(&format!(
        "INSERT INTO article_article (title, content, create_time) VALUES ('first', 'one', {}); \
         INSERT INTO article_article (title, content, create_time) VALUES ('second', 'two', {});",
        ts[0], ts[1]
    ))
    .await;
    let server = Stack::on(&db).demo(50).start().await;
    let resp = server
        .client()
        .await
        .article_list(list(1, 10))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(resp.total, 2, "no demo data in a foreign table");
    assert_eq!(resp.articles[0].title, "first");
    assert_eq!(resp.articles[0].create_time, "2026-01-02 03:04:05");
    assert_eq!(resp.articles[1].create_time, "2026-01-03 00:00:00");
    server.stop().await;
    assert!(
        !db.table_exists("_sqlx_migrations").await,
        "no migration bookkeeping added"
    );
}

async fn new_database_is_migrated_with_sqlx_bookkeeping(db: TestDb) {
    let server = Stack::on(&db).demo(0).start().await;
    server.stop().await;
    assert!(db.table_exists("article_article").await);
    assert!(db.table_exists("_sqlx_migrations").await);
}

async fn total_follows_creates_deletes_and_raw_inserts(db: TestDb) {
    let server = Stack::on(&db).demo(3).start().await;
    let mut client = server.client().await;
    let total = |resp: tonic::Response<pb::ArticleListResponse>| resp.into_inner().total;
    assert_eq!(
        total(client.article_list(list(1, 2)).await.expect("list")),
        3
    );
    let create = pb::CreateArticleRequest {
        title: "Counted".into(),
        content: "once".into(),
    };
    client
        .create_article(authed(create, TOKEN))
        .await
        .expect("create");
    client
        .delete_article(authed(pb::DeleteArticleRequest { pk: 1 }, TOKEN))
        .await
        .expect("delete");
    // Rows written behind the service's back (an import, an admin) are counted too.
    db.exec(
        "INSERT INTO article_article (title, content, create_time) \
         VALUES ('raw', 'sql', '2024-01-01 00:00:00')",
    )
    .await;
    let resp = client
        .article_list(list(1, 2))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(resp.total, 4);
    assert_eq!(
        resp.articles.iter().map(|a| a.id).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(resp.next_page, 2);
    let last = client
        .article_list(list(2, 2))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        last.articles.iter().map(|a| a.id).collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!((last.total, last.next_page), (4, 0));
    let empty = client
        .article_list(list(3, 2))
        .await
        .expect("list")
        .into_inner();
    assert!(empty.articles.is_empty());
    assert_eq!((empty.total, empty.next_page), (4, 0));
    server.stop().await;
}

/// SQLite reads pages that start within the first 10,000 rows on the request's thread and
/// deeper ones through the pool (`store::sqlite`); both must give the same pages.
async fn pages_are_contiguous_across_the_short_read_offset_limit(db: TestDb) {
    let server = Stack::on(&db).demo(10_050).start().await;
    let mut client = server.client().await;
    for page in 998..=1005 {
        let resp = client
            .article_list(list(page, 10))
            .await
            .expect("list")
            .into_inner();
        let first = (page - 1) * 10 + 1;
        assert_eq!(
            resp.articles.iter().map(|a| a.id).collect::<Vec<_>>(),
            (first..first + 10).collect::<Vec<_>>(),
            "page {page}"
        );
        assert_eq!(resp.total, 10_050, "page {page}");
        assert!(resp.articles.iter().all(|a| a.create_time.len() == 19));
    }
    let past = client
        .article_list(list(1006, 10))
        .await
        .expect("list")
        .into_inner();
    assert!(past.articles.is_empty());
    assert_eq!((past.total, past.next_page), (10_050, 0));
    server.stop().await;
}

crate::backend_tests!(
    pages_are_contiguous_across_the_short_read_offset_limit,
    total_follows_creates_deletes_and_raw_inserts,
    paging_page_2_of_size_5_returns_ids_6_to_10,
    paging_zero_means_first_page_of_ten,
    paging_clamps_page_size_to_100,
    paging_past_the_end_is_empty_even_for_huge_pages,
    paging_rejects_negative_values_naming_the_field,
    detail_returns_the_article_or_not_found,
    writes_with_a_valid_token_create_update_and_delete,
    writes_without_or_with_a_wrong_token_are_refused,
    writes_are_disabled_when_no_token_is_configured,
    invalid_writes_name_the_field_and_write_nothing,
    rule_violations_carry_a_bad_request_detail_for_grpc_callers,
    legacy_unpackaged_path_serves_article_list,
    health_reports_serving,
    ids_beyond_int32_are_a_clear_error_and_create_rolls_back,
    demo_articles_are_seeded_only_into_a_new_table,
    foreign_django_table_is_served_untouched,
    new_database_is_migrated_with_sqlx_bookkeeping,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_answers_unavailable_and_health_not_serving() {
    // Nothing listens on port 1.
    let store = crate::support::lazy_store("postgres://postgres@127.0.0.1:1/none");
    let server = Stack::on_store(store).start().await;
    let mut client = server.client().await;
    let err = client
        .article_list(list(1, 10))
        .await
        .expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(err.message(), "database unavailable");
    let err = client
        .article_detail(pb::ArticleDetailRequest { pk: 1 })
        .await
        .expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable);

    let health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    let health = &health;
    crate::support::wait_until(
        "ArticleService health NOT_SERVING",
        std::time::Duration::from_secs(10),
        move || async move {
            let status = health
                .clone()
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "article.v1.ArticleService".into(),
                })
                .await
                .expect("check")
                .into_inner()
                .status;
            status == not_serving
        },
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_resource_exhausted_and_writes_nothing() {
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(0).start().await;
    let mut client = server
        .client()
        .await
        .max_encoding_message_size(16 * 1024 * 1024);
    let err = client
        .create_article(authed(
            pb::CreateArticleRequest {
                title: "t".into(),
                content: "x".repeat(5 * 1024 * 1024),
            },
            TOKEN,
        ))
        .await
        .expect_err("a 5 MiB message is over the 4 MiB limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_write_without_a_token_is_refused_before_its_body_is_read() {
    use http_body_util::BodyExt as _;
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(0).start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::StreamBody<
            tokio_stream::wrappers::ReceiverStream<
                Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
            >,
        >>();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // A message header announcing 4 MiB, and then nothing: a server that read the message
    // before authorizing would wait for it.
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(4u32 * 1024 * 1024).to_be_bytes());
    tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::from(prefix))))
        .await
        .expect("send");
    let request = http::Request::post(format!(
        "{}/article.v1.ArticleService/CreateArticle",
        server.url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
    .expect("request");
    let response = tokio::time::timeout(std::time::Duration::from_secs(2), client.request(request))
        .await
        .expect("answered before the body")
        .expect("response");
    assert_eq!(response.headers()["grpc-status"], "16");
    drop(tx);
    let _ = response.into_body().collect().await;
    server.stop().await;
}
