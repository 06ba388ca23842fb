//! File uploads as `multipart/form-data`, as browsers, `curl -F` and Swagger UI send them: each
//! part fills the field of its name (a file into `bytes` or an `HttpBody` with its content
//! type, text parsed by the field's type), the field rules checked once the form is in, limits
//! per part; into a client-streaming `HttpBody` method the file goes on in chunks, and 50 MiB
//! of it leave the gateway binary's memory flat. Over HTTP/1.1 and HTTP/2.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::{ok, spawn, spawn_with};
use crate::support::{NodeNeeds, json, node_test, send};

const BOUNDARY: &str = "----sensorsFormBoundary7MA4YWxk";

/// One part of a form: its name, its file name and content type when it is a file, its bytes.
struct Part<'a> {
    name: &'a str,
    file: Option<(&'a str, &'a str)>,
    data: &'a [u8],
}

fn text<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        file: None,
        data: value.as_bytes(),
    }
}

fn file<'a>(name: &'a str, file_name: &'a str, content_type: &'a str, data: &'a [u8]) -> Part<'a> {
    Part {
        name,
        file: Some((file_name, content_type)),
        data,
    }
}

/// The head of a part, as browsers write it.
fn part_head(part: &Part<'_>) -> Vec<u8> {
    let mut out = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"",
        part.name
    );
    if let Some((file_name, content_type)) = part.file {
        out.push_str(&format!(
            "; filename=\"{file_name}\"\r\nContent-Type: {content_type}"
        ));
    }
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

/// A whole form body.
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend(part_head(part));
        out.extend_from_slice(part.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend(format!("--{BOUNDARY}--\r\n").into_bytes());
    out
}

fn form_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[tokio::test]
async fn a_form_fills_each_field_from_the_part_of_its_name_by_its_type() {
    let stack = spawn().await;
    let table = b"celsius,ohm\n20,1000\n";
    let chart = b"\x89PNG\r\n\x1a\n\0\xff";
    for (version, client) in stack.clients() {
        let body = form(&[
            file("table", "table.csv", "text/csv", table),
            file("chart", "chart.png", "image/png", chart),
            text("version", "7"),
            text("unit", "KELVIN"),
            text("tags", "lab"),
            text("tags", "roof"),
            text("offset", "-1.5"),
        ]);
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/calibrations"))
                .header("content-type", form_type())
                .body(body),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let echoed = json(r).await;
        assert_eq!(echoed["sensor"], "s1", "{version}: {echoed}");
        assert_eq!(echoed["table"], base64(table), "{version}: {echoed}");
        assert_eq!(
            echoed["chart"]["content_type"], "image/png",
            "{version}: {echoed}"
        );
        assert_eq!(
            echoed["chart"]["data"],
            base64(chart),
            "{version}: {echoed}"
        );
        assert_eq!(echoed["version"], 7, "{version}: {echoed}");
        assert_eq!(echoed["unit"], "KELVIN", "{version}: {echoed}");
        assert_eq!(
            echoed["tags"],
            json!(["lab", "roof"]),
            "{version}: {echoed}"
        );
        assert_eq!(echoed["offset"], -1.5, "{version}: {echoed}");

        // JSON bodies keep working on the same route.
        let r = send(
            client
                .post(stack.url("/v1/sensors/s1/calibrations"))
                .json(&json!({"version": 3, "table": base64(b"x")})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(json(r).await["version"], 3, "{version}");
    }
}

#[tokio::test]
async fn a_form_part_that_does_not_fit_is_400_naming_it_and_limits_apply_per_part() {
    let stack = spawn_with(|b| b.body_limit(1024)).await;
    let big = vec![b'x'; 2000];
    let near = vec![b'y'; 900];
    for (version, client) in stack.clients() {
        let post = |parts: &[Part<'_>], token: bool| {
            let mut request = client
                .post(stack.url("/v1/sensors/s1/calibrations"))
                .header("content-type", form_type())
                .body(form(parts));
            if token {
                request = request.header("authorization", "Bearer t");
            }
            send(request)
        };
        for (parts, mentions) in [
            (vec![text("colour", "red")], "colour"),
            (vec![text("version", "seven")], "version"),
            (vec![text("version", "1"), text("version", "2")], "repeated"),
            (vec![text("labels", "a=b")], "labels"),
            (vec![text("sensor", "s2")], "sensor"),
            (
                vec![file("table", "t.bin", "application/octet-stream", &big)],
                "",
            ),
        ] {
            let r = post(&parts, false).await;
            let expected = if mentions.is_empty() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            assert_eq!(r.status(), expected, "{version} {mentions}");
            let error = json(r).await;
            assert!(
                error["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(mentions)),
                "{version}: {error}"
            );
        }
        // The field rules, checked for a caller with credentials once the parts are in.
        let r = post(&[text("version", "101")], true).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let error = json(r).await;
        assert_eq!(
            error["details"][0]["field_violations"][0]["field"], "version",
            "{version}: {error}"
        );
        // Three parts under the limit each, the whole over it: the limit is per part.
        let r = post(
            &[
                file("table", "t.bin", "application/octet-stream", &near),
                file("chart", "c.bin", "application/octet-stream", &near),
                text("tags", std::str::from_utf8(&near).unwrap_or_default()),
            ],
            false,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let echoed = json(r).await;
        assert_eq!(echoed["table"], base64(&near), "{version}");
    }
}

#[tokio::test]
async fn a_file_part_fills_an_http_body_field_with_its_content_type() {
    let stack = spawn().await;
    let firmware = [0u8, 1, 2, 255, b'{'];
    for (version, client) in stack.clients() {
        let r = send(
            client
                .put(stack.url("/v1/sensors/s1/firmware"))
                .header("content-type", form_type())
                .body(form(&[file(
                    "firmware",
                    "fw.bin",
                    "application/x-firmware",
                    &firmware,
                )])),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(
            json(r).await,
            json!({"count": 5, "sensors": ["application/x-firmware", "s1"]}),
            "{version}"
        );
        // The part is named after the body field; another name is refused.
        let r = send(
            client
                .put(stack.url("/v1/sensors/s1/firmware"))
                .header("content-type", form_type())
                .body(form(&[file(
                    "image",
                    "fw.bin",
                    "application/x-firmware",
                    &firmware,
                )])),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        assert!(
            json(r).await["message"]
                .as_str()
                .is_some_and(|m| m.contains("firmware")),
            "{version}"
        );
    }
}

#[tokio::test]
async fn a_form_upload_to_a_client_streaming_http_body_method_goes_on_in_chunks() {
    let stack = spawn().await;
    let data = vec![b'l'; 300 * 1024];
    for (version, client) in stack.clients() {
        // Sent in pieces, as a browser sends a large file.
        let body = form(&[file("file", "app.log", "text/plain", &data)]);
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        let r = send(
            client
                .post(stack.url("/v1/logs"))
                .header("content-type", form_type())
                .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces))),
        )
        .await;
        let status = r.status();
        let summary = json(r).await;
        assert_eq!(status, StatusCode::OK, "{version}: {summary}");
        assert_eq!(summary["count"], data.len(), "{version}: {summary}");
        assert_eq!(summary["sensors"][0], "text/plain", "{version}: {summary}");
        let chunks: usize = summary["sensors"][1]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        assert!(chunks > 1, "{version}: one message, not chunks: {summary}");

        // A part after the file: the call is aborted and the client told why.
        let r = send(
            client
                .post(stack.url("/v1/logs"))
                .header("content-type", form_type())
                .body(form(&[
                    file("file", "app.log", "text/plain", b"line\n"),
                    text("extra", "x"),
                ])),
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{version}");
        let error = json(r).await;
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("extra")),
            "{version}: {error}"
        );
    }
}

#[tokio::test]
async fn the_document_states_form_bodies_with_binary_file_parts() {
    let stack = spawn().await;
    let doc = json(send(stack.h1.get(stack.url("/openapi.json"))).await).await;
    let content = |path: &str, method: &str| -> Value {
        doc["paths"][path][method]["requestBody"]["content"].clone()
    };
    let calibration = content("/v1/sensors/{sensor}/calibrations", "post");
    let schema = &calibration["multipart/form-data"]["schema"];
    assert_eq!(
        schema["properties"]["table"]["format"], "binary",
        "{schema}"
    );
    assert_eq!(
        schema["properties"]["chart"]["format"], "binary",
        "{schema}"
    );
    assert_eq!(
        schema["properties"]["version"]["type"], "integer",
        "{schema}"
    );
    assert_eq!(schema["properties"]["tags"]["type"], "array", "{schema}");
    // Bound by the path, or a map a form cannot set: not parts.
    assert!(schema["properties"]["sensor"].is_null(), "{schema}");
    assert!(schema["properties"]["labels"].is_null(), "{schema}");
    assert!(calibration["application/json"].is_object(), "{calibration}");

    let log = content("/v1/logs", "post");
    assert_eq!(
        log["multipart/form-data"]["schema"]["properties"]["file"]["format"], "binary",
        "{log}"
    );
    assert_eq!(
        log["multipart/form-data"]["schema"]["required"],
        json!(["file"])
    );
    assert!(log["*/*"].is_object(), "{log}");
    let firmware = content("/v1/sensors/{sensor}/firmware", "put");
    assert_eq!(
        firmware["multipart/form-data"]["schema"]["properties"]["firmware"]["format"], "binary",
        "{firmware}"
    );
    // A body without a file takes no form.
    let readings = content("/v1/sensors/{sensor}/readings", "post");
    assert!(readings["multipart/form-data"].is_null(), "{readings}");
}

/// The peak resident memory of process `pid` (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = ok(
        std::fs::read_to_string(format!("/proc/{pid}/status")),
        "/proc status",
    );
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// A form of one file of `size` bytes (zeros), generated as it is sent.
fn streamed_form(size: usize) -> reqwest::Body {
    const PIECE: usize = 64 * 1024;
    let zeros = Bytes::from(vec![0u8; PIECE]);
    let head = Bytes::from(part_head(&file(
        "file",
        "big.bin",
        "application/octet-stream",
        b"",
    )));
    let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n").into_bytes());
    let pieces = (0..size / PIECE).map(move |_| zeros.clone());
    let all = std::iter::once(head)
        .chain(pieces)
        .chain(std::iter::once(tail))
        .map(Ok::<_, std::io::Error>);
    reqwest::Body::wrap_stream(futures::stream::iter(all))
}

#[tokio::test]
async fn a_50_mib_form_upload_streams_through_the_gateway_binary_in_flat_memory() {
    const SIZE: usize = 50 * 1024 * 1024;
    let pool = super::backend::telemetry_pool();
    let (backend, _) = super::backend::spawn_sensors_backend(&pool).await;
    let dir = ok(tempfile::tempdir(), "temp dir");
    let set = dir.path().join("telemetry.binpb");
    ok(
        std::fs::write(&set, super::backend::telemetry_descriptor_bytes()),
        "descriptor set",
    );
    let port = ok(
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()),
        "free port",
    )
    .port();
    let child = ok(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_articles-gateway"))
            .args([
                "--descriptor-set",
                &set.display().to_string(),
                "--backend",
                &backend.url(""),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .kill_on_drop(true)
            .spawn(),
        "gateway binary",
    );
    let pid = child
        .id()
        .unwrap_or_else(|| panic!("the gateway exited at once"));
    let url = format!("http://127.0.0.1:{port}/v1/logs");
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let h1 = reqwest::Client::new();
    let h2 = ok(
        reqwest::Client::builder().http2_prior_knowledge().build(),
        "h2 client",
    );
    let mut up = false;
    for _ in 0..200 {
        if h1
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway binary never became ready");

    for (version, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        // Warm: every code path of an upload run once, its pages resident.
        let r = send(
            client
                .post(&url)
                .header("content-type", form_type())
                .body(streamed_form(1024 * 1024)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let before = peak_rss_kib(pid);
        let started = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            client
                .post(&url)
                .header("content-type", form_type())
                .body(streamed_form(SIZE))
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{version}: 50 MiB not uploaded within 120 s"));
        let r = ok(r, "upload");
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        let summary = json(r).await;
        assert_eq!(summary["count"], SIZE, "{version}: {summary}");
        let after = peak_rss_kib(pid);
        eprintln!(
            "{version}: 50 MiB form upload in {:.1?}; gateway peak RSS {before} KiB before, \
             {after} KiB after (+{} KiB)",
            started.elapsed(),
            after.saturating_sub(before)
        );
        // Buffered whole, the peak would grow by 50 MiB at least.
        assert!(
            after.saturating_sub(before) < 16 * 1024,
            "{version}: the gateway's peak RSS grew from {before} KiB to {after} KiB"
        );
    }
}

#[tokio::test]
async fn swagger_ui_uploads_a_file_picked_in_its_form() {
    let stack = spawn().await;
    if let Some(stdout) = node_test(
        "uploads.test.mjs",
        &[("UPLOADS_URL", stack.url(""))],
        NodeNeeds::Browser,
    )
    .await
    {
        assert!(stdout.contains("# pass 1"), "{stdout}");
    }
}

/// A form sent whole in one late frame: its head first, then a pause, then every byte and the
/// end at once (as an HTTP/2 DATA frame with END_STREAM brings them).
fn late_form(parts: &[Part<'_>]) -> reqwest::Body {
    let body = Bytes::from(form(parts));
    reqwest::Body::wrap_stream(async_stream::stream! {
        tokio::time::sleep(Duration::from_millis(100)).await;
        yield Ok::<_, std::io::Error>(body);
    })
}

#[tokio::test]
async fn a_form_sent_whole_in_one_late_frame_is_read() {
    let stack = spawn().await;
    for (version, client) in stack.clients() {
        let r = send(
            client
                .put(stack.url("/v1/sensors/s1/firmware"))
                .header("content-type", form_type())
                .body(late_form(&[file(
                    "firmware",
                    "fw.bin",
                    "application/x-firmware",
                    b"abc",
                )])),
        )
        .await;
        let status = r.status();
        let body = json(r).await;
        assert_eq!(status, StatusCode::OK, "{version}: {body}");
        assert_eq!(body["count"], 3, "{version}: {body}");

        let r = send(
            client
                .post(stack.url("/v1/logs"))
                .header("content-type", form_type())
                .body(late_form(&[file("file", "a.log", "text/plain", b"line\n")])),
        )
        .await;
        let status = r.status();
        let body = json(r).await;
        assert_eq!(status, StatusCode::OK, "{version}: {body}");
        assert_eq!(body["count"], 5, "{version}: {body}");
    }
}
