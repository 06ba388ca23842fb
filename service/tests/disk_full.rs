//! A full disk under a SQLite database: a write is answered OK only once it committed, a write
//! that cannot be stored is RESOURCE_EXHAUSTED "database disk is full", health is NOT_SERVING
//! while the disk is full, and the service recovers by itself when space returns.
//!
//! A real filesystem fills: a tmpfs of a few MiB mounted over a temporary directory. Mounting
//! needs root (CAP_SYS_ADMIN); where it is not permitted the test says why and skips.
//!
//! PostgreSQL's disk cannot be filled here: a trigger raises its SQLSTATEs instead
//! (`53100 disk_full`, `53200 out_of_memory`), as the server would.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, CreateArticleRequest,
    article_service_client::ArticleServiceClient,
};
use tonic::{Code, transport::Channel};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Stack, TestDb, authorized, in_ci};

/// A tmpfs mounted over a temporary directory, unmounted when dropped (also when the test
/// fails), then the directory removed.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it), or says why it cannot.
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there must not keep the mount alive. The
        // directory itself is removed after this, as `dir` drops.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros into `path` until it is `bytes` long or the filesystem is full.
fn fill(path: &Path, bytes: usize) {
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 4096];
    let mut written = 0;
    while written < bytes {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n,
        }
    }
}

async fn create(
    client: &mut ArticleServiceClient<Channel>,
    title: &str,
    content: &str,
) -> Result<i32, tonic::Status> {
    let response = client
        .create_article(authorized(CreateArticleRequest {
            title: title.to_owned(),
            content: content.to_owned(),
        }))
        .await?;
    Ok(response
        .into_inner()
        .article
        .expect("the created article")
        .id)
}

/// Fills the disk under a served SQLite file, frees it, restarts the service: see the module
/// docs. Titles are unique, so each acknowledged article is known by its id and title.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_not_serving_loses_no_acknowledged_write_and_recovers() {
    let fs = match Tmpfs::mount("4m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: cannot mount a small filesystem to fill: {why}");
            return;
        }
    };
    // Space to give back later (more than the service waits for), taken before the database.
    let filler: PathBuf = fs.path().join("filler");
    fill(&filler, 2 * 1024 * 1024);
    let url = format!("sqlite://{}", fs.path().join("articles.db").display());
    let mut stack = Stack::on_url(&url)
        .process(&["--health-interval", "200ms", "--busy-timeout", "500ms"])
        .demo(0)
        .start()
        .await;
    stack.wait_health(0, ServingStatus::Serving).await;
    let mut client = stack.client().await;

    // Until the first RESOURCE_EXHAUSTED: bounded in count (the 2 MiB left hold about 60 of
    // these, each stored twice: the article and its event) and in time.
    let content = "x".repeat(16 * 1024);
    let mut acknowledged: Vec<(i32, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut full = None;
    for n in 0..1_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "disk not full in 60 s"
        );
        let title = format!("article {n}");
        match create(&mut client, &title, &content).await {
            Ok(id) => acknowledged.push((id, title)),
            Err(status) => {
                full = Some(status);
                break;
            }
        }
    }
    let status = full.expect("the disk filled up");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("database disk is full"),
        "{status:?}"
    );
    assert!(!acknowledged.is_empty(), "some articles fit");

    // What is left of the disk is taken too (a tmpfs page at a time), and writes go on
    // failing the same way, never "database is locked", never OK for something not stored.
    let plug = fs.path().join("plug");
    fill(&plug, usize::MAX);
    for n in 0..5 {
        let title = format!("small {n}");
        match create(&mut client, &title, "small").await {
            Ok(id) => acknowledged.push((id, title)),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("database disk is full"),
                    "{status:?}"
                );
            }
        }
    }
    assert_stored(&mut client, &acknowledged, "while the disk is full").await;
    stack.wait_health(0, ServingStatus::NotServing).await;

    // Space returns: the service notices by itself, and writes succeed again.
    std::fs::remove_file(&plug).expect("remove plug");
    std::fs::remove_file(&filler).expect("remove filler");
    stack.wait_health(0, ServingStatus::Serving).await;
    for n in 0..3 {
        let title = format!("after {n}");
        let id = create(&mut client, &title, "space again")
            .await
            .expect("CreateArticle once space returned");
        acknowledged.push((id, title));
    }
    assert_stored(&mut client, &acknowledged, "after space returned").await;

    // Every acknowledged write survives a crash of the service (no graceful shutdown).
    stack.kill(0).await;
    stack.restart(0).await;
    let mut client = stack.client().await;
    assert_stored(&mut client, &acknowledged, "after a restart").await;
    stack.stop().await;
    drop(fs);
}

/// Asserts that every acknowledged article is readable with its title, and that nothing else
/// is stored (a failed write left nothing behind).
async fn assert_stored(
    client: &mut ArticleServiceClient<Channel>,
    acknowledged: &[(i32, String)],
    when: &str,
) {
    for (id, title) in acknowledged {
        let article = client
            .article_detail(ArticleDetailRequest { pk: *id })
            .await
            .unwrap_or_else(|e| panic!("{when}: article {id}, answered OK, is not readable: {e}"))
            .into_inner()
            .article
            .expect("article");
        assert_eq!(&article.title, title, "{when}");
    }
    let total = client
        .article_list(ArticleListRequest::default())
        .await
        .expect("ArticleList")
        .into_inner()
        .total;
    assert_eq!(
        usize::try_from(total).expect("total"),
        acknowledged.len(),
        "{when}: exactly the acknowledged articles are stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_disk_full_and_insufficient_resources_are_resource_exhausted() {
    let Some(db) = TestDb::postgres().await else {
        assert!(!in_ci(), "TEST_POSTGRES_URL must be set in CI");
        eprintln!("skipped: set TEST_POSTGRES_URL to run on PostgreSQL");
        return;
    };
    let stack = Stack::on(&db).demo(0).start().await;
    let mut client = stack.client().await;
    for (sqlstate, message) in [
        ("disk_full", "database disk is full"),
        ("out_of_memory", "database out of resources"),
    ] {
        db.exec(&format!(
            "CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'as the server would' USING ERRCODE = '{sqlstate}'; END $$; \
             CREATE OR REPLACE TRIGGER refuse BEFORE INSERT ON article_article \
             FOR EACH ROW EXECUTE FUNCTION refuse();"
        ))
        .await;
        let status = create(&mut client, "refused", "refused")
            .await
            .expect_err("the trigger refuses");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{sqlstate}: {status:?}"
        );
        assert_eq!(status.message(), message, "{sqlstate}");
    }
    db.exec("DROP TRIGGER refuse ON article_article").await;
    // The refused inserts took ids of the sequence: only this one is stored.
    let id = create(&mut client, "stored", "stored")
        .await
        .expect("CreateArticle without the trigger");
    assert_stored(&mut client, &[(id, "stored".to_owned())], "on PostgreSQL").await;
    stack.stop().await;
}
