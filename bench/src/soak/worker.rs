//! The soak's load: REST workers through the gateway and gRPC workers straight to the
//! service, closed loop (send, wait for the whole answer, check it, send the next), each
//! keeping its own [`Tally`] that [`Tally::merge`] adds up at the end.
//!
//! A request counts as an error when its status is not the expected one (200, or 404 /
//! NOT_FOUND for an unknown id), when a create's or detail's body does not carry the expected
//! id, on any transport error, or when no answer comes within the request timeout (a hang; the
//! connection is then reopened). Workers stop at the deadline, at the shared request cap, or
//! when [`Control::stop`] is raised (a process died).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, article_service_client::ArticleServiceClient,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;
use tonic::{Code, transport::Channel};

use super::mix::{self, GrpcPlanned, Kind, Mix, Planned, Rng};
use crate::{
    load::{
        CallError,
        rest::{RestConn, RestEndpoint},
    },
    stats::{self, Hist},
};

/// How many distinct error messages a tally keeps.
pub(crate) const MAX_MESSAGES: usize = 5;

/// What all workers share: the end, the cap and the stop flag.
#[derive(Debug)]
pub(crate) struct Control {
    /// No request starts after this.
    pub(crate) deadline: Instant,
    /// The request cap, over all workers.
    pub(crate) max_requests: u64,
    /// Requests started so far.
    pub(crate) issued: AtomicU64,
    /// Raised to stop every worker early.
    pub(crate) stop: AtomicBool,
    /// The longest wait for one answer.
    pub(crate) request_timeout: Duration,
}

impl Control {
    /// Whether a worker may start one more request (and counts it if so).
    fn go(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.deadline
            && self.issued.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }
}

/// One worker's counts, errors and latencies.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Answered as expected, per [`Kind::index`].
    pub(crate) ok: [u64; Kind::ALL.len()],
    /// Errors, per [`Kind::index`].
    pub(crate) errors: [u64; Kind::ALL.len()],
    /// Latency of every request sent, successful or not.
    pub(crate) hist: Hist,
    /// The first [`MAX_MESSAGES`] distinct error messages with how often each was seen.
    pub(crate) messages: Vec<(String, u64)>,
    /// The last answer's end.
    pub(crate) last_end: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            ok: [0; Kind::ALL.len()],
            errors: [0; Kind::ALL.len()],
            hist: stats::new_hist(),
            messages: Vec::new(),
            last_end: None,
        }
    }
}

impl Tally {
    fn record(&mut self, kind: Kind, latency: Duration, result: Result<(), String>) {
        stats::record(&mut self.hist, latency);
        match result {
            Ok(()) => self.ok[kind.index()] += 1,
            Err(message) => self.fail(kind, &message),
        }
    }

    /// Counts an error without a latency (the request could not even be sent).
    fn fail(&mut self, kind: Kind, message: &str) {
        self.errors[kind.index()] += 1;
        self.note(format!("{}: {message}", kind.label()), 1);
    }

    fn note(&mut self, message: String, times: u64) {
        if let Some(seen) = self.messages.iter_mut().find(|(m, _)| *m == message) {
            seen.1 += times;
        } else if self.messages.len() < MAX_MESSAGES {
            self.messages.push((message, times));
        }
    }

    /// Adds `other` into this tally.
    ///
    /// # Errors
    /// Histograms with different bounds (ruled out by [`stats::new_hist`]).
    pub(crate) fn merge(&mut self, other: Self) -> Result<()> {
        for i in 0..Kind::ALL.len() {
            self.ok[i] += other.ok[i];
            self.errors[i] += other.errors[i];
        }
        stats::merge(&mut self.hist, &other.hist)?;
        for (message, times) in other.messages {
            self.note(message, times);
        }
        self.last_end = self.last_end.max(other.last_end);
        Ok(())
    }

    /// All requests.
    pub(crate) fn total(&self) -> u64 {
        self.ok.iter().sum::<u64>() + self.error_count()
    }

    /// All errors.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// How a failed request failed.
enum Failure {
    /// A wrong answer on a healthy connection.
    Answer(String),
    /// The connection is unusable.
    Broken(String),
}

/// A REST worker: one connection to the gateway at `addr`, the mix of worker `id`.
pub(crate) async fn rest_worker(
    id: usize,
    addr: SocketAddr,
    token: HeaderValue,
    articles: u32,
    control: Arc<Control>,
) -> Tally {
    let mut tally = Tally::default();
    let mut mix = Mix::new(id, articles);
    let mut client = None;
    while control.go() {
        let planned = mix.plan();
        let kind = planned.kind();
        let conn = match client.as_mut() {
            Some(conn) => conn,
            None => match RestConn::connect(&RestEndpoint::local(addr)).await {
                Ok(conn) => client.insert(conn),
                Err(err) => {
                    tally.fail(kind, &format!("connect: {err:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(control.request_timeout, rest_call(conn, &token, &planned))
                .await
                .unwrap_or_else(|_| {
                    Err(Failure::Broken(format!(
                        "no answer within {:?}",
                        control.request_timeout
                    )))
                });
        let end = Instant::now();
        tally.last_end = Some(end);
        match outcome {
            Ok(created) => {
                if let Some(pk) = created {
                    mix.created(pk);
                }
                tally.record(kind, end - started, Ok(()));
            }
            Err(Failure::Answer(message)) => tally.record(kind, end - started, Err(message)),
            Err(Failure::Broken(message)) => {
                tally.record(kind, end - started, Err(format!("transport: {message}")));
                client = None;
            }
        }
    }
    tally
}

/// The id in `{"article": {"id": N, ...}}`.
#[derive(Debug, Deserialize)]
struct ArticleBody {
    article: IdOnly,
}

#[derive(Debug, Deserialize)]
struct IdOnly {
    id: i32,
}

/// Performs one planned request and checks the answer; returns the id of a created article.
async fn rest_call(
    conn: &mut RestConn,
    token: &HeaderValue,
    planned: &Planned,
) -> Result<Option<i32>, Failure> {
    let (method, path, auth, body, expected, want_id) = match planned {
        Planned::List { page, page_size } => (
            Method::GET,
            format!("/articles?page={page}&page_size={page_size}"),
            None,
            None,
            StatusCode::OK,
            None,
        ),
        Planned::Detail { pk } => (
            Method::GET,
            format!("/articles/{pk}"),
            None,
            None,
            StatusCode::OK,
            Some(*pk),
        ),
        Planned::DetailMissing { pk } => (
            Method::GET,
            format!("/articles/{pk}"),
            None,
            None,
            StatusCode::NOT_FOUND,
            None,
        ),
        Planned::Create { title } => (
            Method::POST,
            "/articles".to_owned(),
            Some(token),
            Some(json(
                &serde_json::json!({ "title": title, "content": CONTENT }),
            )),
            // 201 Created, as the proto declares.
            StatusCode::CREATED,
            None,
        ),
        Planned::Update { pk, title } => (
            Method::PATCH,
            format!("/articles/{pk}"),
            Some(token),
            Some(json(&serde_json::json!({ "title": title }))),
            StatusCode::OK,
            Some(*pk),
        ),
        Planned::Delete { pk } => (
            Method::DELETE,
            format!("/articles/{pk}"),
            Some(token),
            None,
            StatusCode::OK,
            Some(*pk),
        ),
    };
    let (status, answer) = conn
        .send(method, &path, auth, body)
        .await
        .map_err(|err| match err {
            CallError::Broken(m) => Failure::Broken(m),
            other => Failure::Answer(other.to_string()),
        })?;
    if status != expected {
        return Err(Failure::Answer(format!(
            "HTTP {status} (expected {expected}): {}",
            snippet(&answer)
        )));
    }
    let is_create = matches!(planned, Planned::Create { .. });
    if want_id.is_none() && !is_create {
        return Ok(None);
    }
    let id = serde_json::from_slice::<ArticleBody>(&answer)
        .map(|b| b.article.id)
        .map_err(|e| {
            Failure::Answer(format!(
                "body without article.id ({e}): {}",
                snippet(&answer)
            ))
        })?;
    match want_id {
        Some(want) if want != id => Err(Failure::Answer(format!(
            "asked for article {want}, got {id}"
        ))),
        _ => Ok(is_create.then_some(id)),
    }
}

/// The body of created articles (a few hundred bytes, like the demo articles).
const CONTENT: &str = "Written by bench soak. A few hundred bytes of text stand in for a real \
     article body, so that writes carry a realistic payload through the gateway's JSON-to-gRPC \
     transcoding and into SQLite. The soak creates, patches and deletes only its own articles.";

fn json(value: &serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(160).collect();
    if text.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// A gRPC worker: one channel to the service at `url`.
pub(crate) async fn grpc_worker(
    id: usize,
    url: String,
    articles: u32,
    control: Arc<Control>,
) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::new(0x6770_0000 + id as u64);
    let mut client = None;
    while control.go() {
        let planned = mix::next_grpc(&mut rng, articles);
        let kind = match planned {
            GrpcPlanned::List { .. } => Kind::GrpcList,
            GrpcPlanned::Detail { missing: false, .. } => Kind::GrpcDetail,
            GrpcPlanned::Detail { missing: true, .. } => Kind::GrpcDetailMissing,
        };
        let conn = match client.as_mut() {
            Some(conn) => conn,
            None => match grpc_connect(&url).await {
                Ok(conn) => client.insert(conn),
                Err(err) => {
                    tally.fail(kind, &format!("connect: {err:#}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(control.request_timeout, grpc_call(conn, planned))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", control.request_timeout)));
        let end = Instant::now();
        tally.last_end = Some(end);
        tally.record(kind, end - started, outcome);
    }
    tally
}

async fn grpc_connect(url: &str) -> Result<ArticleServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .context("gRPC endpoint")?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ArticleServiceClient::new(channel))
}

async fn grpc_call(
    client: &mut ArticleServiceClient<Channel>,
    planned: GrpcPlanned,
) -> Result<(), String> {
    let describe = |s: &tonic::Status| format!("gRPC {:?}: {}", s.code(), s.message());
    match planned {
        GrpcPlanned::List { page, page_size } => client
            .article_list(ArticleListRequest {
                page,
                page_size,
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|s| describe(&s)),
        GrpcPlanned::Detail { pk, missing } => {
            match (
                client.article_detail(ArticleDetailRequest { pk }).await,
                missing,
            ) {
                (Ok(answer), false) => match answer.into_inner().article {
                    Some(article) if article.id == pk => Ok(()),
                    Some(article) => Err(format!("asked for article {pk}, got {}", article.id)),
                    None => Err(format!("article {pk}: answer without an article")),
                },
                (Err(status), true) if status.code() == Code::NotFound => Ok(()),
                (Ok(_), true) => Err(format!("unknown article {pk} was found")),
                (Err(status), _) => Err(describe(&status)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge_and_keep_few_distinct_messages() -> Result<()> {
        let mut a = Tally::default();
        let mut b = Tally::default();
        a.record(Kind::List, Duration::from_millis(1), Ok(()));
        for i in 0..10 {
            b.record(
                Kind::Create,
                Duration::from_millis(2),
                Err(format!("e{}", i % 7)),
            );
        }
        a.merge(b)?;
        assert_eq!(a.total(), 11);
        assert_eq!(a.error_count(), 10);
        assert_eq!(a.ok[Kind::List.index()], 1);
        assert_eq!(a.messages.len(), MAX_MESSAGES);
        assert_eq!(a.messages[0].1, 2, "e0 seen twice: {:?}", a.messages);
        Ok(())
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet(b"abc"), "abc");
        assert_eq!(snippet(&[b'x'; 500]).chars().count(), 161);
    }
}
