//! `multipart/form-data` request bodies: file uploads as browsers, `curl -F` and Swagger UI
//! send them, for the methods whose body holds a file (a `bytes` field or a
//! `google.api.HttpBody`).
//!
//! A route takes a form ([`form`]) when its rule's body is
//!
//! - an `HttpBody` (`body: "*"` on an `HttpBody` request, or a body field of that type) or a
//!   `bytes` body field: the form is that one file, in the part named after the field (`file`
//!   for a whole `HttpBody` request); its content type goes into the `HttpBody`;
//! - a message (`body: "*"`, or a message body field) with a `bytes` or `HttpBody` field:
//!   each part fills the field of its name (proto or JSON name): a file or text into a `bytes`
//!   field as it is, into an `HttpBody` with its content type, and a text part into any other
//!   field parsed by the field's type, as a query value is ([`super::value`]).
//!
//! A client-streaming method takes a form only when its request (or its body field) is an
//! `HttpBody`: the file goes on in chunks as it arrives, never whole (see the stream reader).
//! Buffered forms are bounded part by part (each at most the body limit) and in their number
//! of parts. Parsing is multer's (axum's multipart parser), not ours.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http::HeaderValue;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::{
    get_set,
    http_body::{self, RawBody},
    set, value,
};
use crate::{
    error::Error,
    rules::{Binding, BodyRule},
};

/// The most parts a buffered form may have, and the most body limits its whole body may take
/// (part heads and boundaries included): with each part bounded by the body limit, this bounds
/// what a form holds in memory.
pub const MAX_PARTS: usize = 16;

/// The content type of a file part that does not state one.
const DEFAULT_FILE_TYPE: &str = "application/octet-stream";

/// Where the parts of a form go, for a route that takes one.
#[derive(Debug, Clone)]
pub enum Form {
    /// The body is one file, in the part named `part`.
    File {
        /// The part's name.
        part: String,
        /// Where its bytes go.
        target: FileTarget,
    },
    /// Each part fills the field of its name in `message`: the request message (`body: "*"`)
    /// or the message of the body field `body`.
    Fields {
        /// The body field, for `body: "field"`.
        body: Option<FieldDescriptor>,
        /// The message whose fields the parts fill.
        message: MessageDescriptor,
    },
}

/// Where a form's one file goes.
#[derive(Debug, Clone)]
pub enum FileTarget {
    /// An `HttpBody`: the request, or a field of it.
    Raw(RawBody),
    /// A `bytes` body field.
    Bytes(FieldDescriptor),
}

impl Form {
    /// Whether the file of this form can go to the backend chunk by chunk (a client-streaming
    /// `HttpBody` upload): where the chunks go, and the part that carries them.
    pub fn streamed(&self) -> Option<(&str, &RawBody)> {
        match self {
            Self::File {
                part,
                target: FileTarget::Raw(raw),
            } => Some((part, raw)),
            _ => None,
        }
    }
}

/// The form a route takes, if its body holds a file.
pub fn form(binding: &Binding) -> Option<Form> {
    let streaming = binding.method.is_client_streaming();
    if let Some(raw) = http_body::raw_target(binding) {
        let part = match &raw {
            RawBody::Whole => "file".to_owned(),
            RawBody::Field(field) => field.name().to_owned(),
        };
        return Some(Form::File {
            part,
            target: FileTarget::Raw(raw),
        });
    }
    if streaming {
        return None;
    }
    match &binding.body {
        BodyRule::Field(field) if !field.is_list() && field.kind() == Kind::Bytes => {
            Some(Form::File {
                part: field.name().to_owned(),
                target: FileTarget::Bytes(field.clone()),
            })
        }
        BodyRule::Field(field) if !field.is_list() && !field.is_map() => match field.kind() {
            Kind::Message(message) if message.fields().any(|f| is_file(&f)) => Some(Form::Fields {
                body: Some(field.clone()),
                message,
            }),
            _ => None,
        },
        BodyRule::Whole => {
            let input = binding.method.input();
            let takes_files = input
                .fields()
                .any(|f| is_file(&f) && !binding.is_path_bound(f.name()));
            takes_files.then_some(Form::Fields {
                body: None,
                message: input,
            })
        }
        _ => None,
    }
}

/// Whether a field takes a file: `bytes` or `google.api.HttpBody` (one, or a list of them).
pub fn is_file(field: &FieldDescriptor) -> bool {
    if field.is_map() {
        return false;
    }
    match field.kind() {
        Kind::Bytes => true,
        Kind::Message(m) => http_body::is_http_body(&m),
        _ => false,
    }
}

/// Whether a form part can set `field`: a file field, or one whose value has a text form.
pub fn is_settable(field: &FieldDescriptor) -> bool {
    if field.is_map() {
        return false;
    }
    is_file(field)
        || match field.kind() {
            Kind::Message(m) => value::message_has_text_form(&m),
            _ => true,
        }
}

/// The boundary of a `multipart/form-data` body, if `content_type` is one.
///
/// # Errors
/// A `multipart/form-data` type without a usable boundary (400).
pub fn boundary(content_type: Option<&HeaderValue>) -> Result<Option<String>, Error> {
    let Some(text) = content_type.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Ok(None);
    }
    multer::parse_boundary(text).map(Some).map_err(|e| {
        Error::InvalidArgument(format!("invalid multipart/form-data content type: {e}"))
    })
}

/// `body`'s frames for multer, with a pause after each. multer takes every frame that is ready
/// before it parses any of them, so a fast client would have it hold as much as arrives (and a
/// streamed file go on in chunks that large); and when the first data and the body's end come
/// in one such round while it looks for the first boundary, it reports the form incomplete
/// (multer 3.1). One frame a round avoids both.
pub fn one_frame_at_a_time<S, T>(body: S) -> impl Stream<Item = T> + Send + 'static
where
    S: Stream<Item = T> + Send + 'static,
    T: Send + 'static,
{
    async_stream::stream! {
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.next().await {
            yield frame;
            tokio::task::yield_now().await;
        }
    }
}

/// One part of a buffered form.
#[derive(Debug, Clone)]
pub struct Part {
    /// Its name (`Content-Disposition: form-data; name=...`).
    pub name: String,
    /// Its `Content-Type`, when it states one.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Bytes,
}

/// Reads the parts of a form from `body`, each at most `limit` bytes (else 413), at most
/// [`MAX_PARTS`] of them. A body stream that fails with the gateway's own error (a body too
/// slow) answers that error.
///
/// # Errors
/// A malformed form (400), a part over the limit (413), or what the body stream failed with.
pub async fn read<S>(body: S, boundary: String, limit: usize) -> Result<Vec<Part>, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + 'static,
{
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(limit as u64)
            .whole_stream((limit as u64).saturating_mul(MAX_PARTS as u64)),
    );
    let mut multipart =
        multer::Multipart::with_constraints(one_frame_at_a_time(body), boundary, constraints);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| error(e, limit))? {
        if parts.len() == MAX_PARTS {
            return Err(Error::InvalidArgument(format!(
                "the form has more than {MAX_PARTS} parts"
            )));
        }
        let (name, content_type) = part_head(&field)?;
        let data = field.bytes().await.map_err(|e| error(e, limit))?;
        parts.push(Part {
            name,
            content_type,
            data,
        });
    }
    Ok(parts)
}

/// A part's name and content type.
///
/// # Errors
/// A part without a name (400): it can fill no field.
pub fn part_head(field: &multer::Field<'_>) -> Result<(String, Option<String>), Error> {
    let name = field
        .name()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::InvalidArgument("a form part has no name".to_owned()))?
        .to_owned();
    let content_type = field
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((name, content_type))
}

/// The gateway's error for multer's: the body stream's own, 413 past the limit, else 400.
pub fn error(error: multer::Error, limit: usize) -> Error {
    match error {
        multer::Error::FieldSizeExceeded { .. } => Error::PayloadTooLarge { limit },
        multer::Error::StreamSizeExceeded { limit } => Error::PayloadTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        multer::Error::StreamReadFailed(source) => match source.downcast::<Error>() {
            Ok(own) => *own,
            Err(other) => {
                Error::InvalidArgument(format!("reading the request body failed: {other}"))
            }
        },
        other => Error::InvalidArgument(format!("invalid multipart/form-data body: {other}")),
    }
}

/// The content type a file part goes on with.
pub fn file_type(content_type: Option<&str>) -> &str {
    content_type
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(DEFAULT_FILE_TYPE)
}

/// Fills `message` (already filled from the path and query) from the parts of `form`.
///
/// # Errors
/// 400 naming the part: a name the form does not have, a singular field given twice, a value
/// that does not parse, a field the path set to another value.
pub fn fill(message: &mut DynamicMessage, form: &Form, parts: Vec<Part>) -> Result<(), Error> {
    match form {
        Form::File { part, target } => {
            let mut file = None;
            for given in parts {
                if given.name != *part {
                    return Err(unknown(&given.name, &[part.as_str()]));
                }
                if file.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "form part {part:?} is given twice; send one file"
                    )));
                }
                file = Some(given);
            }
            let Some(file) = file else {
                return Err(Error::InvalidArgument(format!(
                    "the form has no part {part:?}: send the file in it"
                )));
            };
            match target {
                FileTarget::Raw(raw) => http_body::fill(
                    message,
                    raw,
                    file_type(file.content_type.as_deref()),
                    file.data,
                ),
                FileTarget::Bytes(field) => {
                    set(
                        message,
                        std::slice::from_ref(field),
                        Value::Bytes(file.data),
                    )?;
                }
            }
            Ok(())
        }
        Form::Fields {
            body,
            message: desc,
        } => {
            let mut seen: Vec<FieldDescriptor> = Vec::new();
            for part in parts {
                let Some(field) = desc
                    .get_field_by_name(&part.name)
                    .or_else(|| desc.get_field_by_json_name(&part.name))
                else {
                    let names: Vec<String> = desc
                        .fields()
                        .filter(is_settable)
                        .map(|f| f.name().to_owned())
                        .collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    return Err(unknown(&part.name, &names));
                };
                if !field.is_list() {
                    if seen.contains(&field) {
                        return Err(Error::InvalidArgument(format!(
                            "form part {:?} is repeated, but its field is not a repeated field",
                            part.name
                        )));
                    }
                    seen.push(field.clone());
                }
                let value = part_value(&field, part)?;
                let chain: Vec<FieldDescriptor> = body.iter().cloned().chain([field]).collect();
                if let Some(bound) = get_set(message, &chain)
                    && !chain[chain.len() - 1].is_list()
                    && bound != value
                {
                    return Err(Error::InvalidArgument(format!(
                        "form part {:?} differs from the path's value for it; send the same \
                         value or leave it out of the form",
                        chain[chain.len() - 1].name()
                    )));
                }
                set(message, &chain, value)?;
            }
            Ok(())
        }
    }
}

/// The value one part gives `field`.
fn part_value(field: &FieldDescriptor, part: Part) -> Result<Value, Error> {
    match field.kind() {
        Kind::Bytes => return Ok(Value::Bytes(part.data)),
        Kind::Message(m) if http_body::is_http_body(&m) => {
            return Ok(Value::Message(http_body::chunk(
                m,
                file_type(part.content_type.as_deref()),
                part.data,
            )));
        }
        _ => {}
    }
    if !is_settable(field) {
        return Err(Error::InvalidArgument(format!(
            "form part {:?} names a field of type {} that a form cannot set; send JSON",
            part.name,
            value::expected(field)
        )));
    }
    let text = std::str::from_utf8(&part.data).map_err(|_| {
        Error::InvalidArgument(format!("form part {:?} is not UTF-8 text", part.name))
    })?;
    value::parse(field, text).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "invalid value {:?} for form part {:?}: expected {}",
            abridged(text),
            part.name,
            value::expected(field)
        ))
    })
}

fn unknown(name: &str, known: &[&str]) -> Error {
    Error::InvalidArgument(format!(
        "unknown form part {name:?}; the form takes {}",
        known
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A long text cut for an error message.
fn abridged(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}
