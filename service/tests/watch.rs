//! WatchArticles on SQLite and PostgreSQL: an event per create, update and delete in commit
//! order, resuming from an event id, writes through another replica (another store on the same
//! database, as another process would be) seen within a second, failed writes leaving no event,
//! a deadline ending the stream, a Django-made database left without an event table, and idle
//! watchers costing no reads of the event table (one poller per process wakes them all).

use std::time::{Duration, Instant};

use articles_proto::article::v1::{self as pb, article_event::Kind};
use tonic::{Code, Request, Streaming};

use crate::support::{Backend, Stack, TOKEN, TestDb, wait_until};

/// How long an event may take to reach a watcher: the issue's bound.
const WITHIN: Duration = Duration::from_secs(1);

fn authed<T>(message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("metadata"),
    );
    req
}

async fn watch(stack: &Stack, last_event_id: i64) -> Streaming<pb::ArticleEvent> {
    stack
        .client()
        .await
        .watch_articles(pb::WatchArticlesRequest { last_event_id })
        .await
        .expect("WatchArticles")
        .into_inner()
}

/// The next event, which must come within `within`.
async fn next(stream: &mut Streaming<pb::ArticleEvent>, within: Duration) -> pb::ArticleEvent {
    tokio::time::timeout(within, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
        .expect("an event, not the end")
}

/// Nothing more within `wait`.
async fn nothing_more(stream: &mut Streaming<pb::ArticleEvent>, wait: Duration) {
    if let Ok(got) = tokio::time::timeout(wait, stream.message()).await {
        panic!("expected no event, got {got:?}");
    }
}

async fn create(stack: &Stack, title: &str) -> pb::Article {
    stack
        .client()
        .await
        .create_article(authed(pb::CreateArticleRequest {
            title: title.to_owned(),
            content: format!("{title} content"),
        }))
        .await
        .expect("CreateArticle")
        .into_inner()
        .article
        .expect("article")
}

async fn create_update_and_delete_arrive_in_order_with_increasing_ids(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    let mut events = watch(&stack, 0).await;
    let mut client = stack.client().await;
    let created = create(&stack, "first").await;
    let updated = client
        .update_article(authed(pb::UpdateArticleRequest {
            pk: created.id,
            title: Some("first, edited".to_owned()),
            content: None,
        }))
        .await
        .expect("UpdateArticle")
        .into_inner()
        .article
        .expect("article");
    let deleted = client
        .delete_article(authed(pb::DeleteArticleRequest { pk: created.id }))
        .await
        .expect("DeleteArticle")
        .into_inner()
        .article
        .expect("article");

    let got = [
        next(&mut events, WITHIN).await,
        next(&mut events, WITHIN).await,
        next(&mut events, WITHIN).await,
    ];
    let kinds: Vec<i32> = got.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Created as i32,
            Kind::Updated as i32,
            Kind::Deleted as i32
        ]
    );
    assert_eq!(got[0].article.as_ref(), Some(&created));
    assert_eq!(got[1].article.as_ref(), Some(&updated));
    assert_eq!(got[2].article.as_ref(), Some(&deleted), "what was deleted");
    assert_eq!(deleted.title, "first, edited");
    assert!(got[0].event_id > 0, "{got:?}");
    assert!(
        got[0].event_id < got[1].event_id && got[1].event_id < got[2].event_id,
        "{got:?}"
    );
    nothing_more(&mut events, Duration::from_millis(300)).await;
    drop(events);
    stack.stop().await;
}

async fn a_watch_resumes_after_the_given_event_id(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    for title in ["one", "two", "three"] {
        create(&stack, title).await;
    }
    let mut all = watch(&stack, 0).await;
    let first = next(&mut all, WITHIN).await;
    let second = next(&mut all, WITHIN).await;
    let third = next(&mut all, WITHIN).await;
    drop(all);

    let mut resumed = watch(&stack, second.event_id).await;
    assert_eq!(next(&mut resumed, WITHIN).await, third, "only what follows");
    nothing_more(&mut resumed, Duration::from_millis(300)).await;
    let fourth = create(&stack, "four").await;
    let event = next(&mut resumed, WITHIN).await;
    assert_eq!(event.article, Some(fourth));
    assert!(event.event_id > third.event_id);
    drop(resumed);

    let mut from_first = watch(&stack, first.event_id).await;
    assert_eq!(next(&mut from_first, WITHIN).await, second);
    drop(from_first);

    let status = stack
        .client()
        .await
        .watch_articles(pb::WatchArticlesRequest { last_event_id: -1 })
        .await
        .expect_err("a negative id");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("last_event_id"), "{status:?}");
    stack.stop().await;
}

async fn a_write_on_one_replica_reaches_a_watcher_on_another_within_a_second(db: TestDb) {
    // Two services, each with its own store on the one database, as two processes would be.
    let a = Stack::on(&db).demo(0).start().await;
    let b = Stack::on(&db).demo(0).start().await;
    let mut on_b = watch(&b, 0).await;
    // Let the watcher catch up and go to sleep: the write must wake it, not its first read.
    nothing_more(&mut on_b, Duration::from_millis(600)).await;
    for round in 0..3 {
        let started = Instant::now();
        let created = create(&a, &format!("written on A, round {round}")).await;
        let event = next(&mut on_b, WITHIN).await;
        let took = started.elapsed();
        assert_eq!(event.article, Some(created));
        assert_eq!(event.kind, Kind::Created as i32);
        assert!(took < WITHIN, "took {took:?}");
    }
    drop(on_b);
    b.stop().await;
    a.stop().await;
}

/// On PostgreSQL the other replica's watcher is woken by NOTIFY, not by its poll: the median of
/// a few writes is far below the poll interval (polling alone would give about half of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_another_replicas_watcher_is_woken_by_notify_before_its_poll() {
    let Some(db) = TestDb::postgres().await else {
        assert!(
            !crate::support::in_ci(),
            "TEST_POSTGRES_URL must be set in CI"
        );
        eprintln!("skipped: set TEST_POSTGRES_URL to run on PostgreSQL");
        return;
    };
    let a = Stack::on(&db).demo(0).start().await;
    let b = Stack::on(&db).demo(0).start().await;
    let mut on_b = watch(&b, 0).await;
    nothing_more(&mut on_b, Duration::from_millis(600)).await;
    let mut took = Vec::new();
    for round in 0..5 {
        // Between writes: a random phase of B's poll.
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        let started = Instant::now();
        let created = create(&a, &format!("notified {round}")).await;
        let event = next(&mut on_b, WITHIN).await;
        took.push(started.elapsed());
        assert_eq!(event.article, Some(created));
    }
    took.sort();
    let poll = articles_service::store::POSTGRES_POLL;
    assert!(
        took[2] < poll / 3,
        "median {:?} of {took:?} (poll {poll:?})",
        took[2]
    );
    drop(on_b);
    b.stop().await;
    a.stop().await;
}

async fn a_watcher_that_stops_reading_blocks_no_writer(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    let mut client = stack.client().await;
    // 4 MB of events: more than the HTTP/2 windows (256 KiB a stream, 2 MiB a connection)
    // hold, so the watch below really stalls on its client.
    let content = "x".repeat(64 * 1024);
    for i in 0..60 {
        client
            .create_article(authed(pb::CreateArticleRequest {
                title: format!("big {i}"),
                content: content.clone(),
            }))
            .await
            .expect("CreateArticle");
    }
    let mut stalled = watch(&stack, 0).await;
    next(&mut stalled, WITHIN).await;
    // The watcher reads no more; writes go on at their usual pace.
    for i in 0..10 {
        let started = Instant::now();
        create(&stack, &format!("while stalled {i}")).await;
        assert!(
            started.elapsed() < WITHIN,
            "a write took {:?}",
            started.elapsed()
        );
    }
    // And the stalled watcher then gets every event, in order.
    let mut titles = Vec::new();
    for _ in 1..70 {
        let event = next(&mut stalled, Duration::from_secs(5)).await;
        titles.push(event.article.expect("article").title);
    }
    assert_eq!(titles[0], "big 1");
    assert_eq!(titles[58], "big 59");
    assert_eq!(titles[68], "while stalled 9");
    drop(stalled);
    stack.stop().await;
}

async fn a_failed_write_records_no_event(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    let mut client = stack.client().await;
    let before = create(&stack, "before").await;
    let missing = client
        .update_article(authed(pb::UpdateArticleRequest {
            pk: 9999,
            title: Some("nobody".to_owned()),
            content: None,
        }))
        .await
        .expect_err("no such article");
    assert_eq!(missing.code(), Code::NotFound);
    let missing = client
        .delete_article(authed(pb::DeleteArticleRequest { pk: 9999 }))
        .await
        .expect_err("no such article");
    assert_eq!(missing.code(), Code::NotFound);
    let refused = client
        .create_article(pb::CreateArticleRequest {
            title: "no token".to_owned(),
            content: "c".to_owned(),
        })
        .await
        .expect_err("unauthenticated");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // A write the database fails after its event row was inserted: both roll back together.
    db.exec(match db.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER boom AFTER INSERT ON article_event WHEN NEW.title = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.title = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NULL; END $$; \
             CREATE TRIGGER boom AFTER INSERT ON article_event FOR EACH ROW \
             EXECUTE FUNCTION boom();"
        }
    })
    .await;
    let failed = client
        .create_article(authed(pb::CreateArticleRequest {
            title: "boom".to_owned(),
            content: "c".to_owned(),
        }))
        .await
        .expect_err("the database refuses it");
    assert_eq!(failed.code(), Code::Internal, "{failed:?}");
    let after = create(&stack, "after").await;

    let mut events = watch(&stack, 0).await;
    let first = next(&mut events, WITHIN).await;
    let second = next(&mut events, WITHIN).await;
    assert_eq!(first.article, Some(before));
    assert_eq!(second.article, Some(after));
    nothing_more(&mut events, Duration::from_millis(300)).await;
    drop(events);
    assert_eq!(db.scalar("SELECT count(*) FROM article_event").await, 2);
    assert_eq!(db.scalar("SELECT count(*) FROM article_article").await, 2);
    stack.stop().await;
}

async fn a_deadline_ends_the_watch_with_deadline_exceeded(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    let mut request = Request::new(pb::WatchArticlesRequest { last_event_id: 0 });
    request.set_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let mut events = stack
        .client()
        .await
        .watch_articles(request)
        .await
        .expect("WatchArticles")
        .into_inner();
    let end = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the stream ends by its deadline");
    let status = end.expect_err("ended by the deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    drop(events);
    // The server is not left holding the stream: it stops at once.
    tokio::time::timeout(Duration::from_secs(5), stack.stop())
        .await
        .expect("graceful stop");
}

async fn stopping_the_server_ends_open_watches_with_unavailable(db: TestDb) {
    let stack = Stack::on(&db).demo(0).start().await;
    let mut events = watch(&stack, 0).await;
    nothing_more(&mut events, Duration::from_millis(300)).await;
    // A graceful stop waits for every call: the watch must end for it to finish.
    let stopping = tokio::spawn(stack.stop());
    let end = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the watch ends when the server stops");
    let status = end.expect_err("ended by the shutdown");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    drop(events);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("graceful stop finishes")
        .expect("stop task");
}

async fn watching_a_django_table_is_failed_precondition_and_adds_no_table(db: TestDb) {
    db.create_django_table().await;
    let stack = Stack::on(&db).start().await;
    let status = stack
        .client()
        .await
        .watch_articles(pb::WatchArticlesRequest { last_event_id: 0 })
        .await
        .expect_err("no event table");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("Django"), "{status:?}");
    // Writes still work, and leave no event table or trigger behind.
    create(&stack, "still writable").await;
    stack.stop().await;
    assert!(!db.table_exists("article_event").await);
}

/// Reads `n` Server-Sent Events (within 5 s) as (`id:`, data JSON).
async fn sse_events(
    response: &mut reqwest::Response,
    n: usize,
) -> Vec<(String, serde_json::Value)> {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Bounded by the deadline.
    while text.matches("\n\n").count() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("events in time")
            .expect("body")
            .expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .take(n)
        .map(|event| {
            let id = event
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .expect("an id line")
                .to_owned();
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("a data line");
            (id, serde_json::from_str(data).expect("JSON"))
        })
        .collect()
}

async fn the_rest_feed_page_and_sse_resume_from_last_event_id(db: TestDb) {
    let stack = Stack::on(&db).demo(30).rest().start().await;
    let rest = stack.rest_url();
    let client = reqwest::Client::new();

    // `/` opens the gateway's live page 20 events back from the newest (the 30 demo creations).
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let bare = no_redirects
        .get(format!("{rest}/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(bare.status(), 303);
    assert_eq!(bare.headers()["location"], "/?last_event_id=10");
    let page = client.get(format!("{rest}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert_eq!(page.url().query(), Some("last_event_id=10"));
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("page");
    assert!(
        html.contains(
            r#""path":"/articles:watch","method":"article.v1.ArticleService.WatchArticles""#
        ),
        "{html}"
    );
    assert!(!html.contains("src="), "everything inline: {html}");

    // SSE: each event's id is its event_id; Last-Event-ID resumes after it, over the query.
    let mut all = client
        .get(format!("{rest}/articles:watch"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("watch");
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let events = sse_events(&mut all, 3).await;
    for (id, data) in &events {
        assert_eq!(data["event_id"].as_str(), Some(id.as_str()), "{data}");
        assert_eq!(data["kind"], "CREATED", "{data}");
    }
    drop(all);
    let mut resumed = client
        .get(format!("{rest}/articles:watch?last_event_id=0"))
        .header("accept", "text/event-stream")
        .header("last-event-id", &events[1].0)
        .send()
        .await
        .expect("watch");
    let next = sse_events(&mut resumed, 1).await;
    assert_eq!(next[0], events[2], "resumed right after the Last-Event-ID");
    drop(resumed);

    let bad = client
        .get(format!("{rest}/articles:watch"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "-5")
        .send()
        .await
        .expect("watch");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("last_event_id"));
    stack.stop().await;
}

/// `articles_event_table_reads_total` at the process's `/metrics`.
async fn event_table_reads(stack: &Stack) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", stack.metrics_addr()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix("articles_event_table_reads_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no articles_event_table_reads_total in {text}"))
}

/// How many times the event table is read over `span` while the watchers are idle.
async fn reads_over(stack: &Stack, span: Duration) -> u64 {
    let before = event_table_reads(stack).await;
    tokio::time::sleep(span).await;
    event_table_reads(stack).await - before
}

async fn idle_watchers_cost_no_reads_and_each_still_gets_every_event_once(db: TestDb) {
    const WATCHERS: usize = 200;
    let stack = Stack::on(&db).demo(0).metrics().start().await;
    create(&stack, "before").await;
    let mut first = watch(&stack, 0).await;
    let before = next(&mut first, WITHIN).await;
    let span = Duration::from_secs(1);
    let with_one = reads_over(&stack, span).await;

    // The others start from the event the first has seen, all caught up once it is read.
    let reads_before = event_table_reads(&stack).await;
    let mut watchers = vec![first];
    let channels = [
        stack.channel().await,
        stack.channel().await,
        stack.channel().await,
        stack.channel().await,
    ];
    for i in 1..WATCHERS {
        // At most 64 streams a connection: several channels, plain gRPC clients all.
        let mut client = pb::article_service_client::ArticleServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let stream = client
            .watch_articles(pb::WatchArticlesRequest {
                last_event_id: before.event_id,
            })
            .await
            .expect("WatchArticles")
            .into_inner();
        watchers.push(stream);
    }
    // Let each do its own first read, which finds nothing.
    let stack_ref = &stack;
    wait_until(
        "every watcher's first read",
        Duration::from_secs(20),
        move || async move {
            event_table_reads(stack_ref).await
                >= reads_before + u64::try_from(WATCHERS - 1).expect("small")
        },
    )
    .await;
    let with_many = reads_over(&stack, span).await;
    // One poller reads a few times a second whoever watches; 200 pollers read 1,000 times.
    assert!(
        with_many <= with_one * 2 + 10,
        "{WATCHERS} idle watchers read the event table {with_many} times in {span:?}, one \
         watcher {with_one} times"
    );

    let created = [
        create(&stack, "one").await,
        create(&stack, "two").await,
        create(&stack, "three").await,
    ];
    for (i, stream) in watchers.iter_mut().enumerate() {
        let mut ids = Vec::new();
        for article in &created {
            let event = next(stream, Duration::from_secs(5)).await;
            assert_eq!(event.article.as_ref(), Some(article), "watcher {i}");
            ids.push(event.event_id);
        }
        assert!(
            before.event_id < ids[0] && ids[0] < ids[1] && ids[1] < ids[2],
            "watcher {i}: {ids:?} after {}",
            before.event_id
        );
    }
    for stream in watchers.iter_mut().take(5) {
        nothing_more(stream, Duration::from_millis(300)).await;
    }
    drop(watchers);
    stack.stop().await;
}

crate::backend_tests!(
    idle_watchers_cost_no_reads_and_each_still_gets_every_event_once,
    the_rest_feed_page_and_sse_resume_from_last_event_id,
    create_update_and_delete_arrive_in_order_with_increasing_ids,
    a_watch_resumes_after_the_given_event_id,
    a_write_on_one_replica_reaches_a_watcher_on_another_within_a_second,
    a_failed_write_records_no_event,
    a_watcher_that_stops_reading_blocks_no_writer,
    a_deadline_ends_the_watch_with_deadline_exceeded,
    stopping_the_server_ends_open_watches_with_unavailable,
    watching_a_django_table_is_failed_precondition_and_adds_no_table,
);
