//! How a stream of response messages is written in one HTTP response body, chosen per request
//! by `Accept`:
//!
//! - newline-delimited JSON (the default, and `application/x-ndjson`): one
//!   `{"result": <message>}` line per message and, at a failure, a final
//!   `{"error": {"code", "message", "details"}}` line: grpc-gateway's format, so its clients
//!   read it;
//! - Server-Sent Events (`text/event-stream`): `data: <message>` per message, `event: error`
//!   at a failure, for a browser's `EventSource`; a `: keep-alive` comment while the stream is
//!   silent, and a `retry:` line before the error when the client is to reconnect later;
//! - one JSON array (`application/json`), as Envoy's transcoder writes it. An array cannot
//!   carry an error after it has begun, so a failure mid-stream aborts the response: the
//!   client sees a broken body, never a short array that looks complete.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};

/// A Server-Sent Events comment, which `EventSource` ignores: bytes on an idle stream, so that
/// proxies do not cut it.
pub(crate) const SSE_KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Appends the Server-Sent Events line that tells `EventSource` how long to wait before it
/// reconnects.
pub(crate) fn sse_retry(after: Duration, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("retry: {}\n", after.as_millis()).as_bytes());
}

/// The framing of a response stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `application/x-ndjson`.
    Ndjson,
    /// `text/event-stream`.
    Sse,
    /// `application/json`, one array.
    JsonArray,
}

impl Framing {
    /// The framing the request's `Accept` asks for: the first of the three media types it
    /// names, NDJSON when it names none (`*/*`, or no header).
    pub(crate) fn from_accept(headers: &HeaderMap) -> Self {
        let mut best: Option<(usize, Self)> = None;
        for value in headers.get_all(header::ACCEPT) {
            let Ok(text) = value.to_str() else { continue };
            for (position, range) in text.split(',').enumerate() {
                let essence = range.split(';').next().unwrap_or_default().trim();
                let framing = if essence.eq_ignore_ascii_case("text/event-stream") {
                    Self::Sse
                } else if essence.eq_ignore_ascii_case("application/x-ndjson") {
                    Self::Ndjson
                } else if essence.eq_ignore_ascii_case("application/json") {
                    Self::JsonArray
                } else {
                    continue;
                };
                if best.is_none_or(|(p, _)| position < p) {
                    best = Some((position, framing));
                }
            }
        }
        best.map_or(Self::Ndjson, |(_, framing)| framing)
    }

    /// The response's `Content-Type`.
    pub(crate) fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Sse => "text/event-stream",
            Self::JsonArray => "application/json",
        })
    }

    /// Appends the `id:` line of the next message's event (Server-Sent Events only; `id` holds
    /// no line break).
    pub(crate) fn event_id(self, id: &str, out: &mut Vec<u8>) {
        if self == Self::Sse {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
    }

    /// Appends message number `index` (its JSON in `json`) to `out`.
    pub(crate) fn message(self, index: u64, json: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Ndjson => {
                out.extend_from_slice(b"{\"result\":");
                out.extend_from_slice(json);
                out.extend_from_slice(b"}\n");
            }
            // Compact JSON has no newline, so one `data:` line holds the message.
            Self::Sse => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(json);
                out.extend_from_slice(b"\n\n");
            }
            Self::JsonArray => {
                out.push(if index == 0 { b'[' } else { b',' });
                out.extend_from_slice(json);
            }
        }
    }

    /// Appends the error `status_json` (`{"code", "message", "details"}`) after `sent`
    /// messages; `false` when this framing cannot carry it (the response must be aborted).
    pub(crate) fn error(self, status_json: &[u8], out: &mut Vec<u8>) -> bool {
        match self {
            Self::Ndjson => {
                out.extend_from_slice(b"{\"error\":");
                out.extend_from_slice(status_json);
                out.extend_from_slice(b"}\n");
                true
            }
            Self::Sse => {
                out.extend_from_slice(b"event: error\ndata: ");
                out.extend_from_slice(status_json);
                out.extend_from_slice(b"\n\n");
                true
            }
            Self::JsonArray => false,
        }
    }

    /// Appends the end of a stream of `sent` messages.
    pub(crate) fn end(self, sent: u64, out: &mut Vec<u8>) {
        if self == Self::JsonArray {
            out.extend_from_slice(if sent == 0 { b"[]" } else { b"]" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &'static str) -> Framing {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
        Framing::from_accept(&headers)
    }

    #[test]
    fn accept_picks_the_first_framing_it_names() {
        assert_eq!(Framing::from_accept(&HeaderMap::new()), Framing::Ndjson);
        assert_eq!(accept("*/*"), Framing::Ndjson);
        assert_eq!(accept("text/event-stream"), Framing::Sse);
        assert_eq!(accept("application/json"), Framing::JsonArray);
        assert_eq!(
            accept("application/x-ndjson, application/json;q=0.5"),
            Framing::Ndjson
        );
        assert_eq!(accept("text/html, text/event-stream"), Framing::Sse);
    }

    #[test]
    fn each_framing_writes_messages_errors_and_ends() {
        let mut out = Vec::new();
        Framing::Ndjson.message(0, b"{\"a\":1}", &mut out);
        assert!(Framing::Ndjson.error(b"{\"code\":4}", &mut out));
        assert_eq!(out, b"{\"result\":{\"a\":1}}\n{\"error\":{\"code\":4}}\n");

        let mut out = Vec::new();
        Framing::Sse.message(0, b"{}", &mut out);
        Framing::Sse.event_id("7", &mut out);
        Framing::Sse.message(1, b"{}", &mut out);
        assert!(Framing::Sse.error(b"{}", &mut out));
        assert_eq!(
            out,
            b"data: {}\n\nid: 7\ndata: {}\n\nevent: error\ndata: {}\n\n"
        );
        let mut out = Vec::new();
        sse_retry(Duration::from_millis(1500), &mut out);
        assert!(Framing::Sse.error(b"{}", &mut out));
        out.extend_from_slice(SSE_KEEP_ALIVE);
        assert_eq!(
            out,
            b"retry: 1500\nevent: error\ndata: {}\n\n: keep-alive\n\n"
        );

        let mut out = Vec::new();
        Framing::Ndjson.event_id("7", &mut out);
        assert!(out.is_empty(), "only SSE has ids");

        let mut out = Vec::new();
        Framing::JsonArray.message(0, b"1", &mut out);
        Framing::JsonArray.message(1, b"2", &mut out);
        Framing::JsonArray.end(2, &mut out);
        assert!(!Framing::JsonArray.error(b"{}", &mut out));
        assert_eq!(out, b"[1,2]");
        let mut out = Vec::new();
        Framing::JsonArray.end(0, &mut out);
        assert_eq!(out, b"[]");
    }
}
