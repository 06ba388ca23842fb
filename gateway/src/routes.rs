//! The route table: every binding resolved once at start, and request matching.
//!
//! Matching works on the request path split into percent-decoded segments. Candidates are
//! bucketed by their first literal segment so a request only tries templates that can match;
//! among the templates that match, the most specific one allowing the request's method wins
//! (more literal segments, then more segments, then no trailing `**`; ties go to the first
//! declared). If templates match but none allows the method, the answer is 405 with the
//! methods they do allow. Matching allocates nothing but the captured values.

use std::collections::{HashMap, HashSet};

use http::{HeaderValue, Method, uri::PathAndQuery};

use crate::{
    rules::{Binding, Bindings},
    template::Segment,
    transcode::{
        http_body::{self, RawBody},
        multipart, status,
        wire::{self, PlansBuilder},
    },
};

/// One routable binding with what a call needs, resolved at start.
#[derive(Debug, Clone)]
pub struct Route {
    /// The binding (method, template, body rule...).
    pub binding: Binding,
    /// The gRPC path called: `/package.Service/Method`.
    pub grpc_path: PathAndQuery,
    /// Where a raw (`google.api.HttpBody`) request body goes, if the rule takes one.
    pub raw_request: Option<RawBody>,
    /// Where the answer's `HttpBody` is, if it is written raw.
    pub raw_response: Option<RawBody>,
    /// How its answers are written as JSON from their wire bytes.
    pub plan: wire::Plan,
    /// The status of its successful answers (200 unless its options declare another).
    pub success: http::StatusCode,
    /// The `multipart/form-data` body it takes, if its body holds a file.
    pub form: Option<multipart::Form>,
}

/// What a lookup found: a route and its captures, a path served for other methods only (405
/// with `Allow`), or nothing (404).
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route matched; `captures` holds each template variable's value in template order.
    Found {
        route: &'a Route,
        /// The captured (percent-decoded) variable values.
        captures: Vec<String>,
    },
    /// Templates match the path, but none for this method.
    MethodNotAllowed(HeaderValue),
    /// No template matches the path.
    NotFound,
}

/// Every route, indexed for matching.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Routes whose template starts with a literal, by that literal.
    by_first_literal: HashMap<String, Vec<usize>>,
    /// Routes whose template starts with a wildcard (or has no segments).
    other: Vec<usize>,
    /// The custom verbs (`:publish`) some template declares.
    verbs: HashSet<String>,
}

impl RouteTable {
    /// Builds the table from the bindings. Bindings whose gRPC path is not a valid URI path
    /// (impossible for names the descriptor pool accepted) are left out with a warning, as are
    /// exact duplicates of an earlier method + template.
    pub fn new(bindings: &Bindings) -> Self {
        let mut table = Self::default();
        // Every output type compiled once, into one set the routes share.
        let mut builder = PlansBuilder::default();
        let roots: Vec<usize> = bindings
            .bindings
            .iter()
            .map(|b| builder.add(&b.method.output()))
            .collect();
        let plans = builder.finish();
        let mut seen = HashSet::new();
        for (binding, root) in bindings.bindings.iter().zip(roots) {
            let key = (
                binding.http_method.clone(),
                binding.template.as_str().to_owned(),
            );
            if !seen.insert(key) {
                tracing::warn!(
                    method = binding.method.full_name(),
                    route = %format_args!("{} {}", binding.http_method, binding.template),
                    "duplicate route ignored: an earlier method has the same HTTP method and template"
                );
                continue;
            }
            let path = format!(
                "/{}/{}",
                binding.method.parent_service().full_name(),
                binding.method.name()
            );
            let grpc_path = match PathAndQuery::try_from(path.as_str()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(path, error = %e, "route ignored: invalid gRPC path");
                    continue;
                }
            };
            let index = table.routes.len();
            match binding.template.segments().first() {
                Some(Segment::Literal(first)) => table
                    .by_first_literal
                    .entry(first.clone())
                    .or_default()
                    .push(index),
                _ => table.other.push(index),
            }
            if let Some(verb) = binding.template.verb() {
                table.verbs.insert(verb.to_owned());
            }
            table.routes.push(Route {
                raw_request: http_body::raw_target(binding),
                raw_response: http_body::raw_response(binding),
                binding: binding.clone(),
                grpc_path,
                plan: plans.plan(root),
                form: multipart::form(binding),
                success: status::declared(&binding.method)
                    .map_or(http::StatusCode::OK, |declared| declared.status),
            });
        }
        table
    }

    /// Every route, in declaration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether some template ends with the custom verb `verb`.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(verb)
    }

    /// The routes whose template can match `segments`: those starting with its first
    /// segment, then those starting with a wildcard.
    fn candidates<S: AsRef<str>>(&self, segments: &[S]) -> impl Iterator<Item = usize> + '_ {
        let bucket = segments
            .first()
            .and_then(|first| self.by_first_literal.get(first.as_ref()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        bucket.iter().chain(&self.other).copied()
    }

    /// Finds the route for `method` and the decoded `segments` (and verb) of a request path.
    /// `HEAD` is served by the `GET` route of a path unless a template binds `HEAD` itself.
    pub fn lookup<S: AsRef<str>>(
        &self,
        method: &Method,
        segments: &[S],
        verb: Option<&str>,
    ) -> Lookup<'_> {
        let candidates = self.candidates(segments);

        let mut best: Option<(usize, Vec<String>, bool)> = None;
        let mut any_match = false;
        for index in candidates {
            let route = &self.routes[index];
            let template = &route.binding.template;
            let allowed = route.binding.http_method == *method;
            let head_via_get = *method == Method::HEAD && route.binding.http_method == Method::GET;
            if !allowed && !head_via_get {
                // Only a path match matters here (for the 405); skip capturing.
                if !any_match && template.is_match(segments, verb) {
                    any_match = true;
                }
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, _, b_exact)) => {
                    let (spec, best_spec) = (
                        template.specificity(),
                        self.routes[*b].binding.template.specificity(),
                    );
                    spec > best_spec || (spec == best_spec && allowed && !b_exact)
                }
            };
            if !better {
                continue;
            }
            if let Some(captures) = template.matches(segments, verb) {
                any_match = true;
                best = Some((index, captures, allowed));
            }
        }
        match best {
            Some((index, captures, _)) => Lookup::Found {
                route: &self.routes[index],
                captures,
            },
            None if any_match => Lookup::MethodNotAllowed(self.allow(segments, verb)),
            None => Lookup::NotFound,
        }
    }

    /// Finds the streaming route for a WebSocket upgrade: a browser opens it with a GET,
    /// whatever HTTP method the rule names, so the most specific streaming template matching
    /// the path wins. No streaming route: `NotFound`.
    pub fn lookup_stream<S: AsRef<str>>(&self, segments: &[S], verb: Option<&str>) -> Lookup<'_> {
        let mut best: Option<(usize, Vec<String>)> = None;
        for index in self.candidates(segments) {
            let route = &self.routes[index];
            if !route.binding.is_streaming() {
                continue;
            }
            let better = best.as_ref().is_none_or(|(b, _)| {
                route.binding.template.specificity()
                    > self.routes[*b].binding.template.specificity()
            });
            if better && let Some(captures) = route.binding.template.matches(segments, verb) {
                best = Some((index, captures));
            }
        }
        match best {
            Some((index, captures)) => Lookup::Found {
                route: &self.routes[index],
                captures,
            },
            None => Lookup::NotFound,
        }
    }

    /// The `Allow` header for a path: every method of a matching template (and `HEAD` with
    /// `GET`). Built only on the 405 path, so it may allocate.
    fn allow<S: AsRef<str>>(&self, segments: &[S], verb: Option<&str>) -> HeaderValue {
        let mut methods: Vec<&str> = Vec::new();
        for route in &self.routes {
            if route.binding.template.is_match(segments, verb) {
                methods.push(route.binding.http_method.as_str());
                if route.binding.http_method == Method::GET {
                    methods.push(Method::HEAD.as_str());
                }
            }
        }
        methods.sort_unstable();
        methods.dedup();
        // Method names are HTTP tokens, so the joined list is a valid header value.
        HeaderValue::from_str(&methods.join(", ")).unwrap_or(HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let pool = match prost_reflect::DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)
        {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        RouteTable::new(&Bindings::from_pool(&pool))
    }

    fn found(lookup: Lookup<'_>) -> (String, Vec<String>) {
        match lookup {
            Lookup::Found { route, captures } => (route.binding.operation_id(), captures),
            other => panic!("expected a match, got {other:?}"),
        }
    }

    #[test]
    fn article_routes_match_by_method_and_path() {
        let t = table();
        assert_eq!(
            found(t.lookup(&Method::GET, &["articles"], None)),
            ("ArticleList".to_owned(), vec![])
        );
        assert_eq!(
            found(t.lookup(&Method::GET, &["articles", "3"], None)),
            ("ArticleDetail".to_owned(), vec!["3".to_owned()])
        );
        assert_eq!(
            found(t.lookup(&Method::PUT, &["articles", "3"], None)).0,
            "UpdateArticle2"
        );
        assert_eq!(
            found(t.lookup(&Method::HEAD, &["articles", "3"], None)).0,
            "ArticleDetail"
        );
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        let t = table();
        match t.lookup(&Method::POST, &["articles", "3"], None) {
            Lookup::MethodNotAllowed(allow) => {
                assert_eq!(allow, "DELETE, GET, HEAD, PATCH, PUT");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.lookup(&Method::GET, &["nope"], None),
            Lookup::NotFound
        ));
        assert!(matches!(
            t.lookup(&Method::GET, &["articles", ""], None),
            Lookup::NotFound
        ));
    }
}
