//! The `multipart/form-data` body of an operation whose body holds a file, as the gateway
//! reads it ([`crate::transcode::multipart`]): one property per part, a file as `format:
//! binary` (so Swagger UI offers a file picker and generated clients take a file), any other
//! field as its JSON schema. Stated beside the operation's JSON or raw body, not instead.

use utoipa::openapi::{
    Content, KnownFormat, RefOr, Schema, SchemaFormat, Type,
    schema::{ArrayBuilder, ObjectBuilder},
};

use super::schema::{Direction, Schemas};
use crate::rules::Binding;
use crate::transcode::multipart::{self, FileTarget, Form};

/// The media type of a form body.
pub(crate) const MEDIA: &str = "multipart/form-data";

/// The form content of `binding`'s request body, if it takes a form.
pub(crate) fn content(schemas: &Schemas<'_>, binding: &Binding) -> Option<Content> {
    let form = multipart::form(binding)?;
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    match &form {
        Form::File { part, target } => {
            let what = match target {
                FileTarget::Raw(_) => {
                    "The file; its content type goes on with it. A client-streaming method gets \
                     it in chunks as it arrives."
                }
                FileTarget::Bytes(_) => "The file's bytes.",
            };
            object = object.property(part, file(what)).required(part.as_str());
        }
        Form::Fields { body, message } => {
            for field in message.fields() {
                if body.is_none() && binding.is_path_bound(field.name()) {
                    continue;
                }
                if !multipart::is_settable(&field) {
                    continue;
                }
                let schema = if multipart::is_file(&field) {
                    let one = file("A file (or text) part.");
                    if field.is_list() {
                        ArrayBuilder::new().items(one).into()
                    } else {
                        one
                    }
                } else {
                    schemas.field(&field, Direction::Write)
                };
                object = object.property(field.name(), schema);
            }
        }
    }
    Some(Content::new(Some(RefOr::<Schema>::from(object.build()))))
}

/// A file part: binary, described.
fn file(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .description(Some(description))
        .into()
}
