//! Bad input against the real article service, over REST (through the real gateway, both on
//! `127.0.0.1:0`) and over gRPC: every malformed or out-of-range request gets a 4xx in the
//! gateway's JSON error shape (or the right gRPC code), never a 5xx, a panic or a hang, and
//! writes nothing to the database, although the requests carry a valid write token.
//! Valid but extreme values keep their meaning (page size 0: the default; huge: clamped).

use std::time::Duration;

use articles_proto::article::v1::{
    ArticleDetailRequest, ArticleListRequest, CreateArticleRequest, DeleteArticleRequest,
    UpdateArticleRequest, article_service_client::ArticleServiceClient,
};
use reqwest::{Method, StatusCode};
use tonic::{Code, transport::Channel};

use crate::support::{Stack, TOKEN, TestDb};

/// Every request gets at most this long: a hang fails the test instead of stalling it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const DEMO_ARTICLES: u32 = 12;

/// The service (SQLite in a temp dir, demo articles, a write token) behind the gateway, and a
/// client that gives up after [`CLIENT_TIMEOUT`].
struct Faults {
    db: TestDb,
    stack: Stack,
    client: reqwest::Client,
}

async fn spawn_stack() -> Faults {
    let db = TestDb::sqlite();
    let stack = Stack::on(&db).demo(DEMO_ARTICLES).gateway().start().await;
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("a reqwest client");
    Faults { db, stack, client }
}

impl Faults {
    /// Row count, highest id and total text length: any insert, update or delete changes it.
    async fn fingerprint(&self) -> (i64, i64, i64) {
        let count = self.db.scalar("SELECT count(*) FROM article_article").await;
        let max_id = self
            .db
            .scalar("SELECT coalesce(max(id), 0) FROM article_article")
            .await;
        let text = self
            .db
            .scalar("SELECT coalesce(sum(length(title) + length(content)), 0) FROM article_article")
            .await;
        (count, max_id, text)
    }

    /// Sends `method path` (raw: not normalized beyond what `reqwest` does to a URL) with the
    /// write token, an optional body and content type, and extra headers.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.stack.rest_url()))
            .bearer_auth(TOKEN);
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer within {CLIENT_TIMEOUT:?}: {e}"))
    }
}

/// What a bad request must get: this status, and the `{code, message, details}` shape with
/// this gRPC code; the message must contain `mentions`.
struct Expect {
    status: u16,
    code: i32,
    mentions: &'static str,
}

/// One bad request: method, path, body (content type and bytes), what it must get.
type Case = (Method, String, Option<(&'static str, Vec<u8>)>, Expect);

const fn bad(mentions: &'static str) -> Expect {
    Expect {
        status: 400,
        code: 3,
        mentions,
    }
}

async fn assert_rejected(stack: &Faults, what: &str, response: reqwest::Response, expect: &Expect) {
    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    assert!(
        status.is_client_error(),
        "{what}: expected a 4xx, got {status}: {text}"
    );
    assert_eq!(status.as_u16(), expect.status, "{what}: {text}");
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: the error body is not JSON ({e}): {text:?}"));
    assert_eq!(body["code"], expect.code, "{what}: {body}");
    assert!(body["details"].is_array(), "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(expect.mentions),
        "{what}: message {message:?} does not mention {:?}",
        expect.mentions
    );
    let _ = stack;
}

fn nested(depth: usize, open: &str, close: &str, inner: &str) -> Vec<u8> {
    let mut out = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        out.push_str(open);
    }
    out.push_str(inner);
    for _ in 0..depth {
        out.push_str(close);
    }
    out.into_bytes()
}

#[tokio::test]
async fn bad_rest_input_is_a_4xx_in_the_error_shape_and_writes_nothing() {
    let stack = spawn_stack().await;
    let before = stack.fingerprint().await;
    assert_eq!(before.0, i64::from(DEMO_ARTICLES));
    let long_query = format!("page={}", "1".repeat(9 * 1024));
    let long_title = "t".repeat(201);
    let json = "application/json";

    // (method, path, body, expectation)
    let cases: Vec<Case> = vec![
        // Path numbers: not a number, overflowing, negative, zero, fractional, int32 edges.
        (Method::GET, "/articles/abc".into(), None, bad("\"pk\"")),
        (
            Method::GET,
            "/articles/99999999999999999999".into(),
            None,
            bad("\"pk\""),
        ),
        (
            Method::GET,
            "/articles/2147483648".into(),
            None,
            bad("\"pk\""),
        ),
        (
            Method::GET,
            "/articles/4294967297".into(),
            None,
            bad("\"pk\""),
        ),
        (Method::GET, "/articles/-1".into(), None, bad("\"pk\"")),
        (
            Method::GET,
            "/articles/-2147483649".into(),
            None,
            bad("\"pk\""),
        ),
        (Method::GET, "/articles/0".into(), None, bad("\"pk\"")),
        (Method::GET, "/articles/1.5".into(), None, bad("\"pk\"")),
        (Method::GET, "/articles/1e3".into(), None, bad("\"pk\"")),
        (Method::GET, "/articles/%20".into(), None, bad("\"pk\"")),
        (
            Method::GET,
            "/articles/%E2%91%A0".into(),
            None,
            bad("\"pk\""),
        ),
        (
            Method::GET,
            "/articles/2147483647".into(),
            None,
            Expect {
                status: 404,
                code: 5,
                mentions: "",
            },
        ),
        // Query numbers.
        (
            Method::GET,
            "/articles?page=abc".into(),
            None,
            bad("\"page\""),
        ),
        (
            Method::GET,
            "/articles?page=-1".into(),
            None,
            bad("\"page\""),
        ),
        (
            Method::GET,
            "/articles?page_size=-5".into(),
            None,
            bad("\"page_size\""),
        ),
        (
            Method::GET,
            "/articles?pageSize=-5".into(),
            None,
            bad("\"page_size\""),
        ),
        (
            Method::GET,
            "/articles?page=2147483648".into(),
            None,
            bad("\"page\""),
        ),
        (
            Method::GET,
            "/articles?page=-2147483649".into(),
            None,
            bad("\"page\""),
        ),
        (
            Method::GET,
            "/articles?page_size=99999999999999999999999".into(),
            None,
            bad("\"page_size\""),
        ),
        (Method::GET, "/articles?page=".into(), None, bad("\"page\"")),
        (
            Method::GET,
            "/articles?page=0x10".into(),
            None,
            bad("\"page\""),
        ),
        (
            Method::GET,
            "/articles?page=%E2%91%A0".into(),
            None,
            bad("\"page\""),
        ),
        // Unknown, repeated, unicode and malformed parameters; a too long query string.
        (
            Method::GET,
            "/articles?nope=1".into(),
            None,
            bad("\"nope\""),
        ),
        (
            Method::GET,
            "/articles?t%C3%A9l%C3%A9=1".into(),
            None,
            bad("\"télé\""),
        ),
        (
            Method::GET,
            "/articles?page=1&page=2".into(),
            None,
            bad("repeated"),
        ),
        (
            Method::GET,
            "/articles?page=%zz".into(),
            None,
            bad("percent-encoding"),
        ),
        (
            Method::GET,
            "/articles?pa%ge=1".into(),
            None,
            bad("percent-encoding"),
        ),
        (
            Method::GET,
            "/articles?page=%ff".into(),
            None,
            bad("not UTF-8"),
        ),
        (
            Method::GET,
            "/articles/1?pk=2".into(),
            None,
            bad("already set by the path"),
        ),
        (
            Method::GET,
            format!("/articles?{long_query}"),
            None,
            Expect {
                status: 414,
                code: 3,
                mentions: "8192",
            },
        ),
        // Malformed percent-encoding in the path.
        (
            Method::GET,
            "/articles/%zz".into(),
            None,
            bad("percent-encoding"),
        ),
        (Method::GET, "/articles/%ff".into(), None, bad("not UTF-8")),
        // Unknown paths and methods.
        (
            Method::GET,
            "/nope".into(),
            None,
            Expect {
                status: 404,
                code: 5,
                mentions: "/nope",
            },
        ),
        (
            Method::GET,
            "/articles/1/extra".into(),
            None,
            Expect {
                status: 404,
                code: 5,
                mentions: "",
            },
        ),
        (
            Method::GET,
            "/articles/".into(),
            None,
            Expect {
                status: 404,
                code: 5,
                mentions: "",
            },
        ),
        (
            Method::PUT,
            "/articles".into(),
            None,
            Expect {
                status: 405,
                code: 12,
                mentions: "PUT",
            },
        ),
        (
            Method::DELETE,
            "/articles".into(),
            None,
            Expect {
                status: 405,
                code: 12,
                mentions: "",
            },
        ),
        (
            Method::POST,
            "/articles/1".into(),
            None,
            Expect {
                status: 405,
                code: 12,
                mentions: "",
            },
        ),
        (
            Method::from_bytes(b"PURGE").unwrap_or(Method::TRACE),
            "/articles/1".into(),
            None,
            Expect {
                status: 405,
                code: 12,
                mentions: "",
            },
        ),
        // Write paths with bad ids.
        (Method::DELETE, "/articles/0".into(), None, bad("\"pk\"")),
        (Method::DELETE, "/articles/-7".into(), None, bad("\"pk\"")),
        (
            Method::DELETE,
            "/articles/2147483648".into(),
            None,
            bad("\"pk\""),
        ),
        (
            Method::DELETE,
            "/articles/2147483647".into(),
            None,
            Expect {
                status: 404,
                code: 5,
                mentions: "",
            },
        ),
        (
            Method::PATCH,
            "/articles/abc".into(),
            Some((json, br#"{"title":"x"}"#.to_vec())),
            bad("\"pk\""),
        ),
        (
            Method::PUT,
            "/articles/0".into(),
            Some((json, br#"{"title":"x"}"#.to_vec())),
            bad("\"pk\""),
        ),
        // Bodies: invalid JSON, wrong shapes, unknown fields, rules broken.
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"{".to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"[]".to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"\"x\"".to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"null x".to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"{}".to_vec())),
            bad("\"title\""),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":5,"content":"c"}"#.to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"t","content":"c","x":1}"#.to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"t","title":"u","content":"c"}"#.to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"","content":"c"}"#.to_vec())),
            bad("\"title\""),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"   ","content":"c"}"#.to_vec())),
            bad("title"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"t","content":""}"#.to_vec())),
            bad("\"content\""),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, br#"{"title":"\ud800","content":"c"}"#.to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, b"{\"title\":\"\xff\",\"content\":\"c\"}".to_vec())),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((
                json,
                format!(r#"{{"title":"{long_title}","content":"c"}}"#).into_bytes(),
            )),
            bad("at most 200 characters"),
        ),
        (
            Method::PATCH,
            "/articles/1".into(),
            Some((json, format!(r#"{{"title":"{long_title}"}}"#).into_bytes())),
            bad("at most 200 characters"),
        ),
        (
            Method::PATCH,
            "/articles/1".into(),
            Some((json, br#"{"content":""}"#.to_vec())),
            bad("\"content\""),
        ),
        // A body that contradicts the path: neither silently wins.
        (
            Method::PATCH,
            "/articles/1".into(),
            Some((json, br#"{"pk":2,"title":"t"}"#.to_vec())),
            bad("path parameter \"pk\""),
        ),
        // 10 000 levels of nesting: rejected, not a stack overflow.
        (
            Method::POST,
            "/articles".into(),
            Some((json, nested(10_000, "[", "]", ""))),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((json, nested(10_000, "{\"a\":", "}", "1"))),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((
                json,
                [
                    b"{\"title\":".as_slice(),
                    &nested(10_000, "[", "]", ""),
                    b"}",
                ]
                .concat(),
            )),
            bad("invalid JSON"),
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((
                json,
                [
                    b"{\"title\":\"t\",\"content\":".as_slice(),
                    &nested(10_000, "{\"a\":", "}", "1"),
                    b"}",
                ]
                .concat(),
            )),
            bad("invalid JSON"),
        ),
        // Too large, wrong content types.
        (
            Method::POST,
            "/articles".into(),
            Some((json, vec![b' '; 2 * 1024 * 1024])),
            Expect {
                status: 413,
                code: 8,
                mentions: "limit",
            },
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((
                "application/xml",
                br#"{"title":"t","content":"c"}"#.to_vec(),
            )),
            Expect {
                status: 415,
                code: 3,
                mentions: "application/xml",
            },
        ),
        (
            Method::POST,
            "/articles".into(),
            Some((
                "application/x-www-form-urlencoded",
                b"title=t&content=c".to_vec(),
            )),
            // Read as JSON, as grpc-gateway reads it (`curl -d` sends this type).
            Expect {
                status: 400,
                code: 3,
                mentions: "invalid JSON",
            },
        ),
    ];
    for (method, path, body, expect) in cases {
        let what = format!("{method} {}", truncated(&path));
        let response = stack.send(method, &path, body, &[]).await;
        assert_rejected(&stack, &what, response, &expect).await;
    }

    // Writes without the token: 401 (the service's answer), nothing written; an invalid one
    // too, not a 400 telling the rules (the gateway leaves the rules of a write without
    // credentials to the backend, which authenticates first).
    for (what, body) in [
        ("POST without a token", r#"{"title":"t","content":"c"}"#),
        ("an invalid POST without a token", "{}"),
    ] {
        let response = stack
            .client
            .post(format!("{}/articles", stack.stack.rest_url()))
            .header("content-type", json)
            .body(body)
            .send()
            .await
            .expect("an answer to a POST without a token");
        let expect = Expect {
            status: 401,
            code: 16,
            mentions: "",
        };
        assert_rejected(&stack, what, response, &expect).await;
    }

    // Oversized headers: 431. In the error shape when the head reached the gateway's check; a
    // head that overflows hyper's buffer first gets hyper's own 431, with an empty body.
    for (what, size) in [("padding", 100 * 1024), ("more padding", 1024 * 1024)] {
        let response = stack
            .send(
                Method::GET,
                "/articles",
                None,
                &[("x-padding", "p".repeat(size))],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{what}"
        );
        let text = response.text().await.unwrap_or_default();
        if !text.is_empty() {
            let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(body["code"], 3, "{what}: {text}");
        }
    }

    assert_eq!(
        stack.fingerprint().await,
        before,
        "bad input changed the database"
    );
}

fn truncated(path: &str) -> String {
    if path.len() > 80 {
        format!("{}... ({} bytes)", &path[..80], path.len())
    } else {
        path.to_owned()
    }
}

#[tokio::test]
async fn extreme_but_valid_rest_paging_keeps_its_meaning() {
    let stack = spawn_stack().await;
    let before = stack.fingerprint().await;
    let page = |query: &'static str| {
        let stack = &stack;
        async move {
            let response = stack
                .send(Method::GET, &format!("/articles?{query}"), None, &[])
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            response
                .json::<serde_json::Value>()
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
        }
    };
    // 0 is the default of 10; a huge size is clamped to 100 (all 12 here).
    let body = page("page_size=0").await;
    assert_eq!(body["articles"].as_array().map(Vec::len), Some(10));
    assert_eq!(body["next_page"], 2);
    let body = page("page_size=2147483647").await;
    assert_eq!(body["articles"].as_array().map(Vec::len), Some(12));
    assert_eq!(body["total"], 12);
    assert_eq!(body["next_page"], 0);
    // The last int32 page: empty, no next page, no overflow.
    let body = page("page=2147483647&page_size=2147483647").await;
    assert_eq!(body["articles"], serde_json::json!([]));
    assert_eq!(body["next_page"], 0);
    let body = page("page=0&page_size=1").await;
    assert_eq!(body["articles"][0]["id"], 1);
    // Ignored-by-nobody, but empty pairs are skipped.
    let body = page("&&page=1&").await;
    assert_eq!(body["total"], 12);
    assert_eq!(stack.fingerprint().await, before);
}

/// The code of a failed call; `None` when it succeeded.
fn code<T>(result: Result<T, tonic::Status>) -> Option<Code> {
    result.err().map(|s| s.code())
}

async fn grpc_client(stack: &Faults) -> ArticleServiceClient<Channel> {
    ArticleServiceClient::connect(stack.stack.url())
        .await
        .expect("connect to the service")
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = crate::support::authorized(message);
    request.set_timeout(CLIENT_TIMEOUT);
    request
}

#[tokio::test]
async fn bad_grpc_input_gets_the_right_code_and_writes_nothing() {
    let stack = spawn_stack().await;
    let before = stack.fingerprint().await;
    let mut client = grpc_client(&stack).await;

    let list = |page, page_size| {
        authorized(ArticleListRequest {
            page,
            page_size,
            ..Default::default()
        })
    };
    assert_eq!(
        code(client.article_list(list(-1, 0)).await),
        Some(Code::InvalidArgument)
    );
    assert_eq!(
        code(client.article_list(list(0, -1)).await),
        Some(Code::InvalidArgument)
    );
    assert_eq!(
        code(client.article_list(list(i32::MIN, i32::MIN)).await),
        Some(Code::InvalidArgument)
    );
    for pk in [0, -1, i32::MIN] {
        let detail = client
            .article_detail(authorized(ArticleDetailRequest { pk }))
            .await;
        assert_eq!(code(detail), Some(Code::InvalidArgument), "detail {pk}");
        let delete = client
            .delete_article(authorized(DeleteArticleRequest { pk }))
            .await;
        assert_eq!(code(delete), Some(Code::InvalidArgument), "delete {pk}");
        let update = client
            .update_article(authorized(UpdateArticleRequest {
                pk,
                title: Some("t".into()),
                content: None,
            }))
            .await;
        assert_eq!(code(update), Some(Code::InvalidArgument), "update {pk}");
    }
    let detail = client
        .article_detail(authorized(ArticleDetailRequest { pk: i32::MAX }))
        .await;
    assert_eq!(code(detail), Some(Code::NotFound));

    for (title, content) in [
        (String::new(), "c".to_owned()),
        ("   ".to_owned(), "c".to_owned()),
        ("t".repeat(201), "c".to_owned()),
        ("é".repeat(201), "c".to_owned()),
        ("t".to_owned(), String::new()),
        ("t".to_owned(), " \n ".to_owned()),
    ] {
        let created = client
            .create_article(authorized(CreateArticleRequest {
                title: title.clone(),
                content: content.clone(),
            }))
            .await;
        assert_eq!(
            code(created),
            Some(Code::InvalidArgument),
            "create {:?}/{content:?}",
            truncated(&title)
        );
    }
    let update = client
        .update_article(authorized(UpdateArticleRequest {
            pk: 1,
            title: Some("t".repeat(201)),
            content: None,
        }))
        .await;
    assert_eq!(code(update), Some(Code::InvalidArgument));

    // Valid extremes: huge pages are empty, huge sizes clamped.
    let page = client
        .article_list(list(i32::MAX, i32::MAX))
        .await
        .expect("the last page")
        .into_inner();
    assert!(page.articles.is_empty());
    assert_eq!(page.next_page, 0);
    let page = client
        .article_list(list(1, i32::MAX))
        .await
        .expect("a clamped page")
        .into_inner();
    assert_eq!(page.articles.len(), 12);

    assert_eq!(
        stack.fingerprint().await,
        before,
        "bad input changed the database"
    );
}
