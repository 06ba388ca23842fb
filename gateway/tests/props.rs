//! Property tests (proptest) of path templates and query mapping, through the public API:
//! generated templates match the paths built from them and capture the values put in; random
//! templates, paths and query strings never panic; a query string either maps or gets a 400
//! naming a parameter or field.

use std::sync::LazyLock;

use articles_gateway::{
    Error,
    rules::{Binding, Bindings},
    template::{PathTemplate, split_request_path},
    transcode::{self, RequestOptions},
};
use proptest::prelude::*;

use crate::support::library_pool;

/// One piece of a generated template: a literal, or a variable named `v<index>`.
#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Variable,
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            "[a-z][a-z0-9_-]{0,7}".prop_map(Piece::Literal),
            Just(Piece::Variable),
        ],
        1..8,
    )
}

/// A value a variable can capture: a non-empty segment without `/` (percent-decoded already).
fn segment_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~:@!$&'()*+,;= -]{1,12}|\\PC{1,6}".prop_filter("no slash", |s| !s.contains('/'))
}

/// The template text for `pieces`, with an optional trailing `{rest=**}` variable.
fn template_text(pieces: &[Piece], rest: bool) -> String {
    let mut out = String::new();
    let mut n = 0;
    for piece in pieces {
        out.push('/');
        match piece {
            Piece::Literal(l) => out.push_str(l),
            Piece::Variable => {
                out.push_str(&format!("{{v{n}}}"));
                n += 1;
            }
        }
    }
    if rest {
        out.push_str("/{rest=**}");
    }
    out
}

/// The fixture's bindings, compiled once for all cases.
static BINDINGS: LazyLock<Bindings> = LazyLock::new(|| Bindings::from_pool(&library_pool()));

fn binding(operation: &str) -> &'static Binding {
    match BINDINGS
        .bindings
        .iter()
        .find(|b| b.operation_id() == operation)
    {
        Some(b) => b,
        None => panic!("no binding {operation}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_templates_match_their_paths_and_capture_the_values(
        pieces in pieces(),
        values in prop::collection::vec(segment_value(), 8),
        rest in prop::option::of(prop::collection::vec(segment_value(), 0..4)),
    ) {
        let text = template_text(&pieces, rest.is_some());
        let template = match PathTemplate::parse(&text) {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("{text}: {e}"))),
        };
        let mut path: Vec<String> = Vec::new();
        let mut want = Vec::new();
        let mut next = values.iter();
        for piece in &pieces {
            match piece {
                Piece::Literal(l) => path.push(l.clone()),
                Piece::Variable => {
                    let value = next.next().cloned().unwrap_or_else(|| "x".to_owned());
                    path.push(value.clone());
                    want.push(value);
                }
            }
        }
        if let Some(rest) = &rest {
            path.extend(rest.iter().cloned());
            want.push(rest.join("/"));
        }
        prop_assert_eq!(template.matches(&path, None), Some(want), "{} on {:?}", text, path);
        prop_assert!(template.is_match(&path, None));
        // One segment more or (without `**`) fewer does not match.
        if rest.is_none() {
            let mut longer = path.clone();
            longer.push("extra".to_owned());
            prop_assert_eq!(template.matches(&longer, None), None);
            prop_assert_eq!(template.matches(&path[..path.len() - 1], None), None);
        }
        // A verb the template does not declare does not match.
        prop_assert_eq!(template.matches(&path, Some("verb")), None);
    }

    #[test]
    fn random_templates_and_paths_never_panic(
        template in "(/([a-z*]{1,3}|\\{[a-z.=*/]{0,6}\\}|\\*\\*)){0,5}(:[a-z]{0,3})?|\\PC{0,20}",
        path in "(/[^/?#]{0,6}){0,6}(:[a-z]{0,4})?|\\PC{0,30}",
    ) {
        if let Ok(t) = PathTemplate::parse(&template) {
            let _ = t.openapi_path();
            let (segments, verb) = split_request_path(&path, |v| t.verb() == Some(v));
            let captures = t.matches(&segments, verb);
            prop_assert_eq!(captures.is_some(), t.is_match(&segments, verb));
            if let Some(captures) = captures {
                prop_assert_eq!(captures.len(), t.variables().len());
            }
        }
        for segment in split_request_path(&path, |_| true).0 {
            let _ = transcode::path_segment(segment);
        }
    }

    #[test]
    fn random_query_strings_map_or_get_a_400_naming_a_parameter(
        pairs in prop::collection::vec(
            (
                prop_oneof![
                    Just("page_size".to_owned()),
                    Just("pageToken".to_owned()),
                    Just("genres".to_owned()),
                    Just("years".to_owned()),
                    Just("filter.available".to_owned()),
                    Just("filter.author.birth_year".to_owned()),
                    Just("filter.rating".to_owned()),
                    Just("filter.cover".to_owned()),
                    Just("updated_after".to_owned()),
                    Just("read_mask".to_owned()),
                    Just("parent".to_owned()),
                    "[a-zA-Z_.%+]{0,12}",
                    "\\PC{0,8}",
                ],
                prop_oneof![
                    "-?[0-9]{1,25}",
                    "[a-zA-Z0-9%+._-]{0,12}",
                    "\\PC{0,12}",
                    Just("NaN".to_owned()),
                    Just("true".to_owned()),
                    Just("%zz".to_owned()),
                    Just("%ff".to_owned()),
                ],
            ),
            0..6,
        ),
        junk in "[&=]{0,3}",
    ) {
        let binding = binding("ListBooks");
        let mut query = String::new();
        for (key, value) in &pairs {
            query.push_str(key);
            query.push('=');
            query.push_str(value);
            query.push('&');
        }
        query.push_str(&junk);
        let result = transcode::request_message(
            binding,
            vec!["shelves/1".to_owned()],
            Some(&query),
            b"",
            &RequestOptions::default(),
        );
        match result {
            Ok(_) => {}
            Err(Error::InvalidArgument(message)) => {
                prop_assert!(
                    message.contains("query parameter") || message.contains("field"),
                    "{:?} does not name a parameter: {}", query, message
                );
            }
            Err(other) => {
                return Err(TestCaseError::fail(format!("{query:?}: not a 400: {other:?}")));
            }
        }
    }

    #[test]
    fn random_json_bodies_map_or_get_a_400(
        body in prop_oneof![
            "\\PC{0,40}",
            "\\{(\"[a-z_]{1,8}\": ?(\"[a-z]{0,4}\"|-?[0-9]{1,12}|true|null|\\[\\]|\\{\\}),? ?){0,4}\\}",
        ],
    ) {
        let binding = binding("PublishBook");
        let result = transcode::request_message(
            binding,
            vec!["shelves/1/books/2".to_owned()],
            None,
            body.as_bytes(),
            &RequestOptions::default(),
        );
        match result {
            Ok(_) | Err(Error::InvalidArgument(_)) => {}
            Err(other) => {
                return Err(TestCaseError::fail(format!("{body:?}: not a 400: {other:?}")));
            }
        }
    }
}
