//! Proto comments, read from the descriptors' source code info, as OpenAPI descriptions.
//!
//! `build.rs` asks protox for `source_code_info`, so every service, method, message, field and
//! enum carries its comment at the location path prost-reflect reports for it (`path()`). The
//! OpenAPI text is therefore written once, in the proto, next to what it documents.

use prost_reflect::{
    EnumDescriptor, EnumValueDescriptor, FieldDescriptor, FileDescriptor, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor,
};

/// The comment of the element at `path` in `file`: its leading comment, or else its trailing
/// one, dedented and trimmed. `None` when there is none (or the set was built without source
/// info, which only costs the descriptions).
fn at(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let raw = location
        .leading_comments
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .or(location.trailing_comments.as_deref())?;
    let text = clean(raw);
    (!text.is_empty()).then_some(text)
}

/// Removes the indentation common to all lines (protoc keeps the space after `//`) while
/// keeping deeper indentation, which Markdown lists and code blocks need.
fn clean(raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().map(str::trim_end).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let dedented: Vec<&str> = lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    dedented.join("\n").trim().to_owned()
}

/// The first sentence of a comment's first paragraph, on one line: short enough for an
/// operation summary, which Swagger UI shows next to the path.
pub(crate) fn summary(text: &str) -> String {
    let paragraph = text
        .split("\n\n")
        .next()
        .unwrap_or(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match paragraph.find(". ") {
        Some(end) => paragraph[..=end].to_owned(),
        None => paragraph,
    }
}

/// What a comment says after its [`summary`]: the rest of the first paragraph and the
/// paragraphs after it, as written.
pub(crate) fn after_summary(text: &str) -> String {
    let (first, rest) = text.split_once("\n\n").unwrap_or((text, ""));
    let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
    let tail = first.find(". ").map_or("", |end| first[end + 2..].trim());
    match (tail.is_empty(), rest.trim().is_empty()) {
        (true, true) => String::new(),
        (true, false) => rest.trim().to_owned(),
        (false, true) => tail.to_owned(),
        (false, false) => format!("{tail}\n\n{}", rest.trim()),
    }
}

pub(crate) fn of_service(s: &ServiceDescriptor) -> Option<String> {
    at(&s.parent_file(), s.path())
}

pub(crate) fn of_method(m: &MethodDescriptor) -> Option<String> {
    at(&m.parent_file(), m.path())
}

pub(crate) fn of_message(m: &MessageDescriptor) -> Option<String> {
    at(&m.parent_file(), m.path())
}

pub(crate) fn of_field(f: &FieldDescriptor) -> Option<String> {
    at(&f.parent_file(), f.path())
}

pub(crate) fn of_enum(e: &EnumDescriptor) -> Option<String> {
    at(&e.parent_file(), e.path())
}

pub(crate) fn of_enum_value(v: &EnumValueDescriptor) -> Option<String> {
    at(&v.parent_file(), v.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_dedents_and_keeps_nested_indentation() {
        assert_eq!(
            clean(" Lists things.\n\n Options:\n   - a\n"),
            "Lists things.\n\nOptions:\n  - a"
        );
    }

    #[test]
    fn summary_is_the_first_sentence_on_one_line() {
        assert_eq!(
            summary("Lists one page.\nOrdered by id."),
            "Lists one page."
        );
        assert_eq!(
            summary("Creates an\narticle.\n\nMore."),
            "Creates an article."
        );
        assert_eq!(summary("No period"), "No period");
    }

    #[test]
    fn the_description_goes_on_after_the_summary() {
        assert_eq!(
            after_summary("Lists one page.\nOrdered by id."),
            "Ordered by id."
        );
        assert_eq!(after_summary("Creates an\narticle.\n\nMore."), "More.");
        assert_eq!(after_summary("Only a summary."), "");
    }
}
