//! `google.api.http` path templates: parsing and matching.
//!
//! The grammar (from `google/api/http.proto`):
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Hand-written because no maintained crate implements this grammar, and axum's router
//! (matchit) cannot express it: its parameters capture one whole segment (`{name}`) or, last
//! in the path only, the rest (`{*rest}`), so a variable bound to a sub-pattern
//! (`{name=shelves/*}`), a `**` followed by more segments, or a `:verb` suffix split off the
//! last segment has no matchit route. Matching works on borrowed path segments and allocates
//! only for the captured values it returns.

use std::fmt;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal segment that must match exactly (after percent-decoding of the request path).
    Literal(String),
    /// `*`: exactly one segment.
    Single,
    /// `**`: zero or more segments; only allowed last.
    Multi,
}

/// A variable: a field path bound to a range of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The request field, as its dotted proto path (`shelf.name`), split at dots.
    pub field_path: Vec<String>,
    /// Index of the first segment the variable covers.
    pub start: usize,
    /// One past the last segment it covers.
    pub end: usize,
}

impl Variable {
    /// The dotted field path, as written in the template.
    pub fn dotted(&self) -> String {
        self.field_path.join(".")
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// Why a template did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

impl PathTemplate {
    /// Parses a template such as `/v1/{name=shelves/*}/books/{book.id}:publish`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |reason: &str| TemplateError {
            template: template.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with '/'"))?;

        // A verb is a ':' after the last '/', outside any variable braces.
        let (body, verb) = split_verb(rest);
        if let Some(verb) = verb
            && (verb.is_empty() || verb.contains(['/', '{', '}', '*']))
        {
            return Err(fail("the verb after ':' must be a plain literal"));
        }

        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = body;
        if chars.is_empty() {
            // `/` alone, or `/:verb`: no segments.
        } else {
            loop {
                if let Some(inner_rest) = chars.strip_prefix('{') {
                    let close = inner_rest.find('}').ok_or_else(|| fail("unclosed '{'"))?;
                    let inner = &inner_rest[..close];
                    if inner.contains('{') {
                        return Err(fail("nested variables are not allowed"));
                    }
                    let (path, pattern) = match inner.split_once('=') {
                        Some((p, pat)) => (p, Some(pat)),
                        None => (inner, None),
                    };
                    let field_path: Vec<String> = path.split('.').map(str::to_owned).collect();
                    if field_path.iter().any(|p| !is_ident(p)) {
                        return Err(fail("a variable must name a field path like `a.b`"));
                    }
                    if variables
                        .iter()
                        .any(|v: &Variable| v.field_path == field_path)
                    {
                        return Err(fail("a field is bound twice"));
                    }
                    let start = segments.len();
                    match pattern {
                        None => segments.push(Segment::Single),
                        Some(pattern) => {
                            if pattern.is_empty() {
                                return Err(fail("empty variable pattern"));
                            }
                            for part in pattern.split('/') {
                                segments.push(parse_plain_segment(part).map_err(&fail)?);
                            }
                        }
                    }
                    variables.push(Variable {
                        field_path,
                        start,
                        end: segments.len(),
                    });
                    chars = &inner_rest[close + 1..];
                } else {
                    let end = chars.find('/').unwrap_or(chars.len());
                    let part = &chars[..end];
                    segments.push(parse_plain_segment(part).map_err(&fail)?);
                    chars = &chars[end..];
                }
                match chars.strip_prefix('/') {
                    Some(next) => chars = next,
                    None if chars.is_empty() => break,
                    None => return Err(fail("a variable must be followed by '/' or the end")),
                }
            }
        }

        if let Some(pos) = segments.iter().position(|s| *s == Segment::Multi)
            && pos + 1 != segments.len()
        {
            return Err(fail("'**' is only allowed as the last segment"));
        }

        Ok(Self {
            source: template.to_owned(),
            segments,
            variables,
            verb: verb.map(str::to_owned),
        })
    }

    /// The template as written in the proto.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The variables, in template order.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The trailing custom verb (`publish` in `/v1/books/{id}:publish`).
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// Number of literal segments: more literals means a more specific template, which wins
    /// when two templates match the same path.
    pub fn specificity(&self) -> (usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let has_multi = self.segments.last() == Some(&Segment::Multi);
        (literals, self.segments.len(), !has_multi)
    }

    /// The path as OpenAPI writes it: each variable becomes `{dotted.field.path}`.
    pub fn openapi_path(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.segments.len() {
            out.push('/');
            if let Some(var) = self.variables.iter().find(|v| v.start == i) {
                out.push('{');
                out.push_str(&var.dotted());
                out.push('}');
                i = var.end.max(i + 1);
                continue;
            }
            match &self.segments[i] {
                Segment::Literal(lit) => out.push_str(lit),
                Segment::Single => out.push('*'),
                Segment::Multi => out.push_str("**"),
            }
            i += 1;
        }
        if out.is_empty() {
            out.push('/');
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// Whether the template matches the path, without capturing (and so without allocating).
    pub fn is_match<S: AsRef<str>>(&self, path: &[S], verb: Option<&str>) -> bool {
        if self.verb.as_deref() != verb {
            return false;
        }
        let multi = self.segments.last() == Some(&Segment::Multi);
        let fixed = if multi {
            self.segments.len() - 1
        } else {
            self.segments.len()
        };
        if path.len() < fixed || (!multi && path.len() != fixed) {
            return false;
        }
        self.segments[..fixed].iter().zip(path).all(|(seg, value)| {
            let value = value.as_ref();
            match seg {
                Segment::Literal(lit) => lit == value,
                // An empty segment (`/articles/`) never fills a variable or a wildcard.
                Segment::Single => !value.is_empty(),
                Segment::Multi => true,
            }
        })
    }

    /// Matches already split and percent-decoded path segments (and the request's verb, if the
    /// last segment carried one). On success, returns each variable's captured value, in the
    /// order of [`Self::variables`]; a multi-segment variable's segments are joined by `/`.
    pub fn matches<S: AsRef<str>>(&self, path: &[S], verb: Option<&str>) -> Option<Vec<String>> {
        if !self.is_match(path, verb) {
            return None;
        }
        let captures = self
            .variables
            .iter()
            .map(|var| self.capture(var, path))
            .collect();
        Some(captures)
    }

    /// Whether `var` may cover more than one segment (`{x=**}`, `{x=shelves/*}`): what
    /// `google/api/http.proto` calls a multi-segment variable, whose value keeps `%2F`
    /// encoded (reserved expansion), where a single-segment one decodes it.
    pub fn is_multi_segment(&self, var: &Variable) -> bool {
        var.end - var.start > 1 || self.segments[var.start..var.end].contains(&Segment::Multi)
    }

    /// Replaces the captures of the multi-segment variables (see [`Self::is_multi_segment`])
    /// by their values in `reserved`: the same path segments as matched, decoded but for
    /// `%2F`. Only for a path [`Self::matches`] matched.
    pub fn recapture_multi_segment<S: AsRef<str>>(&self, reserved: &[S], captures: &mut [String]) {
        for (var, capture) in self.variables.iter().zip(captures) {
            if self.is_multi_segment(var) {
                *capture = self.capture(var, reserved);
            }
        }
    }

    /// The value `var` captures in `path` (matched): its segments joined by `/`.
    fn capture<S: AsRef<str>>(&self, var: &Variable, path: &[S]) -> String {
        let multi = self.segments.last() == Some(&Segment::Multi);
        let end = if var.end == self.segments.len() && multi {
            path.len()
        } else {
            var.end
        };
        let mut value = String::new();
        for (i, part) in path[var.start..end].iter().enumerate() {
            if i > 0 {
                value.push('/');
            }
            value.push_str(part.as_ref());
        }
        value
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Splits a request path (without query) into segments and an optional trailing `:verb`.
///
/// A `:` in the last segment is a verb separator only when `verbs` says the API declares such a
/// verb, because a colon is also a legal character inside a resource id.
pub fn split_request_path(
    path: &str,
    has_verb: impl Fn(&str) -> bool,
) -> (Vec<&str>, Option<&str>) {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (path, verb) = match path.rfind(':') {
        Some(colon) if !path[colon..].contains('/') && has_verb(&path[colon + 1..]) => {
            (&path[..colon], Some(&path[colon + 1..]))
        }
        _ => (path, None),
    };
    let segments = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    (segments, verb)
}

fn split_verb(rest: &str) -> (&str, Option<&str>) {
    // The verb follows the last '/' that is outside braces; a ':' inside braces is not a verb.
    let mut depth = 0usize;
    let mut colon = None;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => colon = None,
            ':' if depth == 0 => colon = Some(i),
            _ => {}
        }
    }
    match colon {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

fn parse_plain_segment(part: &str) -> Result<Segment, &'static str> {
    match part {
        "" => Err("empty segment"),
        "*" => Ok(Segment::Single),
        "**" => Ok(Segment::Multi),
        lit if lit.contains(['{', '}', '*', '=']) => Err("invalid character in a literal segment"),
        lit => Ok(Segment::Literal(lit.to_owned())),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> PathTemplate {
        match PathTemplate::parse(t) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn simple_variable_matches_one_segment() {
        let t = parse("/articles/{pk}");
        assert_eq!(
            t.matches(&["articles", "3"], None),
            Some(vec!["3".to_owned()])
        );
        assert_eq!(t.matches(&["articles"], None), None);
        assert_eq!(t.matches(&["articles", ""], None), None);
        assert_eq!(t.matches(&["articles", "3", "x"], None), None);
        assert_eq!(t.openapi_path(), "/articles/{pk}");
    }

    #[test]
    fn pattern_variable_captures_several_segments() {
        let t = parse("/v1/{name=shelves/*/books/*}");
        assert_eq!(
            t.matches(&["v1", "shelves", "1", "books", "2"], None),
            Some(vec!["shelves/1/books/2".to_owned()])
        );
        assert_eq!(t.matches(&["v1", "shelves", "1", "tapes", "2"], None), None);
        assert_eq!(t.openapi_path(), "/v1/{name}");
    }

    #[test]
    fn double_wildcard_matches_the_rest() {
        let t = parse("/v1/{path=files/**}");
        assert_eq!(
            t.matches(&["v1", "files", "a", "b", "c"], None),
            Some(vec!["files/a/b/c".to_owned()])
        );
        assert_eq!(
            t.matches(&["v1", "files"], None),
            Some(vec!["files".to_owned()])
        );
        assert!(PathTemplate::parse("/v1/**/x").is_err());
    }

    #[test]
    fn only_multi_segment_variables_are_recaptured() {
        let t = parse("/v1/{a}/{b=*}/{c=x/*}/{d=**}");
        let path = ["v1", "a/1", "b/2", "x", "c/3", "d/4", "e"];
        let reserved = ["v1", "a%2F1", "b%2F2", "x", "c%2F3", "d%2F4", "e"];
        let Some(mut captures) = t.matches(&path, None) else {
            panic!("no match");
        };
        t.recapture_multi_segment(&reserved, &mut captures);
        assert_eq!(captures, ["a/1", "b/2", "x/c%2F3", "d%2F4/e"]);
    }

    #[test]
    fn verb_must_match() {
        let t = parse("/v1/{name=books/*}:publish");
        assert_eq!(t.verb(), Some("publish"));
        assert!(t.matches(&["v1", "books", "1"], Some("publish")).is_some());
        assert!(t.matches(&["v1", "books", "1"], None).is_none());
        assert_eq!(t.openapi_path(), "/v1/{name}:publish");
    }

    #[test]
    fn nested_field_paths_are_split() {
        let t = parse("/v1/shelves/{shelf.id}/books/{book_id}");
        assert_eq!(t.variables()[0].field_path, vec!["shelf", "id"]);
        assert_eq!(t.variables()[1].dotted(), "book_id");
    }

    #[test]
    fn malformed_templates_are_rejected() {
        for bad in [
            "articles",
            "/a/{",
            "/a/{}",
            "/a/{1x}",
            "/a/{x}/{x}",
            "/a//b",
            "/a/{x=}",
            "/a:",
            "/a/{x}y",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn request_path_verbs_are_split_only_when_declared() {
        let (segs, verb) = split_request_path("/v1/books/1:publish", |v| v == "publish");
        assert_eq!((segs, verb), (vec!["v1", "books", "1"], Some("publish")));
        let (segs, verb) = split_request_path("/v1/books/a:b", |v| v == "publish");
        assert_eq!((segs, verb), (vec!["v1", "books", "a:b"], None));
    }
}
