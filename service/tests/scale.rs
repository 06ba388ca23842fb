//! PostgreSQL as the path to scale: replicas starting together migrate and seed once, and a
//! read database serves the reads while writes go to the primary.

use crate::support::{Stack, TOKEN, TestDb, postgres_url_or_skip};
use articles_proto::article::v1::{ArticleListRequest, CreateArticleRequest};
use tonic::Request;

async fn total(service: &Stack) -> i32 {
    service
        .client()
        .await
        .article_list(ArticleListRequest {
            page: 1,
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("ArticleList")
        .into_inner()
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_services_starting_together_on_a_fresh_postgres_schema_migrate_and_seed_once() {
    if postgres_url_or_skip("concurrent start").is_none() {
        return;
    }
    let db = TestDb::postgres().await.expect("postgres");
    let flags = ["--demo-articles", "7", "--min-connections", "1"];
    let services =
        futures::future::join_all((0..4).map(|_| Stack::on(&db).process(&flags).start())).await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM _sqlx_migrations").await,
        3,
        "each migration applied once"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM article_article").await,
        7,
        "N demo articles, not 4N"
    );
    let mut created = 0;
    for service in services {
        assert_eq!(total(&service).await, 7);
        let log = service.stop().await;
        if log.contains("created table article_article") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one start created and seeded the table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_services_starting_together_on_a_new_sqlite_file_create_and_seed_it_once() {
    let db = TestDb::sqlite();
    assert!(!db.sqlite_path().exists(), "the file must not exist yet");
    let flags = ["--demo-articles", "7"];
    let services =
        futures::future::join_all((0..4).map(|_| Stack::on(&db).process(&flags).start())).await;
    let mut created = 0;
    for service in services {
        assert_eq!(total(&service).await, 7, "N demo articles, not 4N");
        let log = service.stop().await;
        if log.contains("created table article_article") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one start created and seeded the file");
    assert_eq!(db.scalar("SELECT count(*) FROM _sqlx_migrations").await, 3);
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    request
}

async fn reads_go_to_the_read_database_and_writes_to_the_primary(primary: TestDb, read: TestDb) {
    // The "replica": already prepared, with other content than the primary will have.
    Stack::on(&read).demo(5).start().await.stop().await;
    let service = Stack::on(&primary)
        .process(&[
            "--read-database-url",
            &read.url,
            "--demo-articles",
            "2",
            "--min-connections",
            "1",
            "--max-connections",
            "3",
            "--acquire-timeout",
            "2s",
        ])
        .start()
        .await;
    assert_eq!(
        total(&service).await,
        5,
        "lists come from the read database"
    );
    let created = service
        .client()
        .await
        .create_article(authorized(CreateArticleRequest {
            title: "To the primary".to_owned(),
            content: "Writes never go to the read database.".to_owned(),
        }))
        .await
        .expect("CreateArticle")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(created.id, 3, "the primary's third row");
    service.stop().await;
    assert_eq!(
        primary.scalar("SELECT count(*) FROM article_article").await,
        3
    );
    assert_eq!(read.scalar("SELECT count(*) FROM article_article").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_go_to_the_read_database_and_writes_to_the_primary() {
    reads_go_to_the_read_database_and_writes_to_the_primary(TestDb::sqlite(), TestDb::sqlite())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_go_to_the_read_database_and_writes_to_the_primary() {
    if postgres_url_or_skip("read database").is_none() {
        return;
    }
    let primary = TestDb::postgres().await.expect("postgres");
    let read = TestDb::postgres().await.expect("postgres");
    reads_go_to_the_read_database_and_writes_to_the_primary(primary, read).await;
}

#[tokio::test]
async fn a_read_database_of_another_backend_is_refused() {
    let primary = TestDb::sqlite();
    let out = tokio::process::Command::new(crate::support::SERVICE_BIN)
        .args(["migrate", "--database-url", &primary.url])
        .output()
        .await
        .expect("run");
    assert!(out.status.success());
    let out = tokio::process::Command::new(crate::support::SERVICE_BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &primary.url,
            "--read-database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .env("RUST_LOG", "off")
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("same backend"), "{stderr}");
}
