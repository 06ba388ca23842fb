//! Demo articles for a fresh database: realistic titles and a few hundred bytes of content,
//! with creation times spread over the past days (oldest first, so ids follow time).

use crate::{clock, model::NewArticle};

const TOPICS: &[(&str, &str)] = &[
    ("gRPC", "a contract-first RPC framework on top of HTTP/2"),
    (
        "Protocol Buffers",
        "a compact, schema-driven binary serialization format",
    ),
    ("Django", "a batteries-included Python web framework"),
    (
        "tonic",
        "a native Rust gRPC implementation built on hyper and tower",
    ),
    ("SQLite", "an embedded SQL database engine in a single file"),
    ("PostgreSQL", "a robust open-source relational database"),
    (
        "async Rust",
        "cooperative concurrency with futures and an executor such as tokio",
    ),
    (
        "REST gateways",
        "translating JSON over HTTP into gRPC calls",
    ),
    (
        "microservices",
        "small services that own their data and talk over the network",
    ),
    (
        "server reflection",
        "letting clients discover services and messages at run time",
    ),
];

const ANGLES: &[&str] = &[
    "Getting started with",
    "A practical guide to",
    "Five mistakes to avoid with",
    "Testing strategies for",
    "Deploying",
    "Performance notes on",
    "Lessons learned running",
    "Why we chose",
];

/// `n` demo articles, oldest first, the newest about an hour ago.
pub fn demo_articles(n: u32) -> Vec<NewArticle> {
    let (now, _) = clock::now();
    let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
    (0..n_usize)
        .map(|i| {
            let (topic, what) = TOPICS[i % TOPICS.len()];
            let angle = ANGLES[(i / TOPICS.len() + i) % ANGLES.len()];
            let part = i / (TOPICS.len() * ANGLES.len()) + 1;
            let title = if part == 1 {
                format!("{angle} {topic}")
            } else {
                format!("{angle} {topic} (part {part})")
            };
            let content = format!(
                "{topic} is {what}. In this article we look at it from a working engineer's \
                 point of view: how to set it up, what the defaults get right, and where they \
                 bite. We walk through a small example step by step, measure what matters, and \
                 finish with a checklist you can apply to your own project. Article {} of the \
                 demo data set.",
                i + 1
            );
            // Spread over the past days: each article about 7 hours after the previous one.
            let back = i64::try_from(n_usize - i).unwrap_or(i64::MAX);
            let secs = now - back.saturating_mul(7 * 3600) + 3 * 3600;
            NewArticle {
                title,
                content,
                create_time: Some(clock::format_seconds(secs)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use articles_proto::article::v1 as pb;

    #[test]
    fn demo_articles_are_valid_and_ordered() {
        let articles = demo_articles(150);
        assert_eq!(articles.len(), 150);
        for a in &articles {
            let request = pb::CreateArticleRequest {
                title: a.title.clone(),
                content: a.content.clone(),
            };
            assert!(crate::rules::check("article.v1.CreateArticleRequest", &request).is_ok());
            assert!(a.content.len() > 200);
        }
        assert!(articles[0].create_time < articles[149].create_time);
    }
}
