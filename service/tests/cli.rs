//! The real binaries: `articles-service import` and the `articles` client.

use std::process::Output;

use crate::support::{Stack, TestDb};
use tokio::process::Command;

async fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("ARTICLES_TOKEN")
        .env_remove("ARTICLES_SERVER")
        .env_remove("ARTICLES_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run binary")
}

const SERVICE: &str = env!("CARGO_BIN_EXE_articles-service");
const CLIENT: &str = env!("CARGO_BIN_EXE_articles");

#[tokio::test]
async fn import_commits_a_good_file_and_nothing_of_a_bad_one() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"title\": \"One\", \"content\": \"first\"}\n\
         {\"title\": \"Two\", \"content\": \"second\", \"create_time\": \"2024-05-06 07:08:09\"}\n\
         \n\
         {\"title\": \"Three\", \"content\": \"third\"}\n",
    )
    .expect("write");
    let out = run(
        SERVICE,
        &[
            "import",
            good.to_str().expect("utf-8"),
            "--database-url",
            &db.url,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 3 articles"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM article_article").await,
        3,
        "no demo data on import"
    );

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"title\": \"Four\", \"content\": \"x\"}\n\
         {\"title\": \"Five\", \"content\": \"x\"}\n\
         {\"title\": \"Six\", \"content\": \"x\", \"author\": \"me\"}\n",
    )
    .expect("write");
    let out = run(
        SERVICE,
        &[
            "import",
            bad.to_str().expect("utf-8"),
            "--database-url",
            &db.url,
        ],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM article_article").await,
        3,
        "nothing of the bad file committed"
    );

    let server = Stack::on(&db).demo(50).start().await;
    let mut client = server.client().await;
    let a = client
        .article_detail(articles_proto::article::v1::ArticleDetailRequest { pk: 2 })
        .await
        .expect("detail")
        .into_inner()
        .article
        .expect("article");
    assert_eq!(a.create_time, "2024-05-06 07:08:09");
    server.stop().await;
}

#[tokio::test]
async fn client_lists_as_json_and_table() {
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(12).start().await;
    let url = server.url();
    let out = run(
        CLIENT,
        &[
            "--server",
            &url,
            "list",
            "--page",
            "2",
            "--page-size",
            "5",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ids: Vec<i64> = json["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![6, 7, 8, 9, 10]);
    assert_eq!(json["total"], 12);
    assert_eq!(json["next_page"], 3);

    let out = run(CLIENT, &["--server", &url, "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ID  CREATED"), "{table}");
    assert_eq!(table.lines().count(), 12);
    server.stop().await;
}

#[tokio::test]
async fn client_writes_with_token() {
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(0).start().await;
    let url = server.url();
    let out = run(
        CLIENT,
        &[
            "--server",
            &url,
            "--token",
            crate::support::TOKEN,
            "create",
            "--title",
            "CLI",
            "--content",
            "body",
            "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["id"], 1);
    let out = run(
        CLIENT,
        &[
            "--server",
            &url,
            "--token",
            crate::support::TOKEN,
            "update",
            "1",
            "--title",
            "New",
        ],
    )
    .await;
    assert!(out.status.success());
    let out = run(CLIENT, &["--server", &url, "get", "1"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("title:       New") && text.contains("body"),
        "{text}"
    );
    let out = run(CLIENT, &["--server", &url, "delete", "1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: UNAUTHENTICATED: "));
    server.stop().await;
}

#[tokio::test]
async fn client_errors_are_one_line_on_stderr_with_exit_code_1() {
    let db = TestDb::sqlite();
    let server = Stack::on(&db).demo(3).start().await;
    let out = run(CLIENT, &["--server", &server.url(), "get", "999"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: NOT_FOUND: article 999 not found\n"
    );
    server.stop().await;

    let out = run(CLIENT, &["--server", "http://127.0.0.1:1", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to http://127.0.0.1:1"),
        "{stderr}"
    );
}
