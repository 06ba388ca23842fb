//! Database availability: a locked SQLite database answers UNAVAILABLE (not INTERNAL) and the
//! service recovers when the lock is released; health goes NOT_SERVING while the database
//! cannot be read and back to SERVING when it can.

use crate::support::{Stack, TOKEN, TestDb, postgres_url_or_skip};
use articles_proto::article::v1::{ArticleListRequest, CreateArticleRequest};
use sqlx::Connection as _;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;

/// Short timeouts so a lock is noticed quickly.
const FAST: &[&str] = &["--busy-timeout", "200ms", "--health-interval", "200ms"];

fn create_request(title: &str) -> Request<CreateArticleRequest> {
    let mut request = Request::new(CreateArticleRequest {
        title: title.to_owned(),
        content: "content".to_owned(),
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    request
}

/// Another connection holding `BEGIN EXCLUSIVE` on the file.
async fn lock(db: &TestDb) -> sqlx::SqliteConnection {
    let mut conn = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut conn)
        .await
        .expect("lock");
    conn
}

async fn unlock(mut conn: sqlx::SqliteConnection) {
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut conn)
        .await
        .expect("unlock");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_django_sqlite_database_is_unavailable_not_serving_then_recovers() {
    // A Django-made file keeps its rollback journal, where an exclusive lock blocks readers.
    let db = TestDb::sqlite();
    db.create_django_table().await;
    db.exec("INSERT INTO article_article (title, content, create_time) VALUES ('a', 'b', '2024-01-01 00:00:00')")
        .await;
    let service = Stack::on(&db).process(FAST).start().await;
    let mut client = service.client().await;
    service.wait_health(0, ServingStatus::Serving).await;

    let held = lock(&db).await;
    let err = client
        .article_list(ArticleListRequest::default())
        .await
        .expect_err("locked");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = client
        .create_article(create_request("while locked"))
        .await
        .expect_err("locked");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    service.wait_health(0, ServingStatus::NotServing).await;

    unlock(held).await;
    service.wait_health(0, ServingStatus::Serving).await;
    let list = client
        .article_list(ArticleListRequest::default())
        .await
        .expect("ArticleList after the lock")
        .into_inner();
    assert_eq!(list.total, 1);
    client
        .create_article(create_request("after the lock"))
        .await
        .expect("CreateArticle after the lock");
    service.stop().await;
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_locked_wal_database_are_unavailable_while_reads_go_on() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db)
        .process(&[FAST, &["--demo-articles", "2"]].concat())
        .start()
        .await;
    let mut client = service.client().await;

    let held = lock(&db).await;
    let err = client
        .create_article(create_request("while locked"))
        .await
        .expect_err("locked");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let list = client
        .article_list(ArticleListRequest::default())
        .await
        .expect("WAL readers are not blocked by a writer")
        .into_inner();
    assert_eq!(list.total, 2);

    unlock(held).await;
    client
        .create_article(create_request("after the lock"))
        .await
        .expect("CreateArticle after the lock");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_returns_to_serving_when_the_database_lets_us_in_again() {
    let Some(admin) = postgres_url_or_skip("postgres health") else {
        return;
    };
    let db = TestDb::postgres().await.expect("postgres");
    let role = format!("articles_{}", std::process::id());
    let mut admin_conn = sqlx::PgConnection::connect(&admin).await.expect("admin");
    let schema_name: String = {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut conn)
            .await
            .expect("schema")
    };
    for sql in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT ALL ON SCHEMA {schema_name} TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin_conn)
            .await
            .expect("role setup");
    }
    // The test's URL with the role as user.
    let (scheme, rest) = db.url.split_once("://").expect("url");
    let (_, host_and_more) = rest.split_once('@').expect("user in TEST_POSTGRES_URL");
    let url = format!("{scheme}://{role}@{host_and_more}");

    let service = Stack::on_url(&url)
        .process(&[
            "--health-interval",
            "200ms",
            "--acquire-timeout",
            "1s",
            "--demo-articles",
            "1",
        ])
        .start()
        .await;
    service.wait_health(0, ServingStatus::Serving).await;

    // Lock the role out and cut its connections: the database is gone for the service.
    for sql in [
        format!("ALTER ROLE {role} NOLOGIN"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin_conn)
            .await
            .expect("lock out");
    }
    service.wait_health(0, ServingStatus::NotServing).await;
    let err = service
        .client()
        .await
        .article_list(ArticleListRequest::default())
        .await
        .expect_err("no database");
    assert_ne!(err.code(), Code::Ok);

    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER ROLE {role} LOGIN")))
        .execute(&mut admin_conn)
        .await
        .expect("let in");
    service.wait_health(0, ServingStatus::Serving).await;
    let list = service
        .client()
        .await
        .article_list(ArticleListRequest::default())
        .await
        .expect("ArticleList after recovery")
        .into_inner();
    assert_eq!(list.total, 1);
    service.stop().await;

    for sql in [
        format!("DROP OWNED BY {role} CASCADE"),
        format!("DROP ROLE {role}"),
    ] {
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin_conn)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_file_refuses_writes_and_reports_not_serving() {
    let db = TestDb::sqlite();
    let service = Stack::on(&db)
        .process(&[FAST, &["--demo-articles", "2"]].concat())
        .start()
        .await;
    let mut client = service.client().await;
    client
        .create_article(create_request("before"))
        .await
        .expect("CreateArticle before the file goes");
    let path = db.sqlite_path();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(&file);
    }
    // Refused, not acknowledged into a file no one will ever open again.
    let err = client
        .create_article(create_request("after"))
        .await
        .expect_err("a write into a deleted file");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    service.wait_health(0, ServingStatus::NotServing).await;
    let log = service.stop().await;
    assert!(
        log.contains("removed or replaced") && log.contains(&path.display().to_string()),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_lock_starve_neither_reads_nor_the_health_check() {
    let db = TestDb::sqlite();
    let flags = [
        "--demo-articles",
        "2",
        "--busy-timeout",
        "2s",
        "--acquire-timeout",
        "500ms",
        "--max-connections",
        "3",
        "--health-interval",
        "100ms",
    ];
    let service = Stack::on(&db).process(&flags).start().await;
    service.wait_health(0, ServingStatus::Serving).await;
    let held = lock(&db).await;
    // More writers than pooled connections, all stuck behind the lock.
    let writers: Vec<_> = (0..10)
        .map(|i| {
            let url = service.url();
            tokio::spawn(async move {
                let channel = tonic::transport::Endpoint::from_shared(url)
                    .expect("url")
                    .connect()
                    .await
                    .expect("connect");
                let mut client =
                    articles_proto::article::v1::article_service_client::ArticleServiceClient::new(
                        channel,
                    );
                client
                    .create_article(create_request(&format!("queued {i}")))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code())
            })
        })
        .collect();
    // For a second and a half the health check and reads go on: a sample every 100 ms (the
    // sleep paces the samples; nothing is awaited).
    let mut client = service.client().await;
    for _ in 0..15 {
        assert_eq!(service.health().await, Some(ServingStatus::Serving));
        let list = client
            .article_list(ArticleListRequest::default())
            .await
            .expect("reads go on behind a writer's lock");
        assert_eq!(list.into_inner().total, 2);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    unlock(held).await;
    for writer in writers {
        let result = writer.await.expect("writer task");
        assert!(
            result.is_ok() || result == Err(Code::Unavailable),
            "{result:?}"
        );
    }
    service.stop().await;
}
