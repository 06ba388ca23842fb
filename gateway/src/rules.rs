//! The HTTP bindings of an API, read from `google.api.http` method options.
//!
//! [`Bindings::from_pool`] walks every service in a descriptor pool once at start, turns each
//! rule and each of its `additional_bindings` into a [`Binding`] (unary and streaming methods
//! alike), and sets aside the methods whose rule is malformed with the reason, so the caller
//! can log them instead of crashing. Both the router and the OpenAPI generator consume these bindings: what
//! the spec documents is exactly what the gateway routes.

use articles_proto::google::api::{HttpRule, http_rule::Pattern};
use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MethodDescriptor};

use crate::template::{PathTemplate, TemplateError};

/// The name of the method option read for routes.
pub const HTTP_EXTENSION: &str = "google.api.http";

/// Where the HTTP request body goes in the request message.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body: every field comes from the path or the query string.
    None,
    /// `body: "*"`: the body is the whole request message (less the path-bound fields).
    Whole,
    /// `body: "field"`: the body is that (message, repeated or scalar) field.
    Field(FieldDescriptor),
}

/// One HTTP route bound to one gRPC method.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The gRPC method called.
    pub method: MethodDescriptor,
    /// The HTTP method matched.
    pub http_method: Method,
    pub template: PathTemplate,
    /// The resolved field chain of each template variable, in template order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    /// Where the request body goes.
    pub body: BodyRule,
    /// `response_body`: the response field sent instead of the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// 0 for the rule itself, 1.. for its `additional_bindings`.
    pub binding_index: usize,
}

impl Binding {
    /// Whether either side of the method streams.
    pub fn is_streaming(&self) -> bool {
        self.method.is_client_streaming() || self.method.is_server_streaming()
    }

    /// A stable operation id: the method name, suffixed for additional bindings.
    pub fn operation_id(&self) -> String {
        if self.binding_index == 0 {
            self.method.name().to_owned()
        } else {
            format!("{}{}", self.method.name(), self.binding_index + 1)
        }
    }

    /// Whether a request field is bound by the path template (its top-level name).
    pub fn is_path_bound(&self, top_level_field: &str) -> bool {
        self.path_fields
            .iter()
            .any(|chain| chain.len() == 1 && chain[0].name() == top_level_field)
    }
}

/// A method left out of the routes, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The method's full name.
    pub method: String,
    /// Why it is not routed.
    pub reason: String,
}

/// Every binding of a pool, plus the methods skipped.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    /// The routable bindings, in service and method order.
    pub bindings: Vec<Binding>,
    /// Methods that have a rule the gateway cannot read.
    pub skipped: Vec<Skipped>,
}

/// A rule that cannot be turned into a route.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The path template does not parse.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Anything else wrong with the rule.
    #[error("{0}")]
    Invalid(String),
}

impl Bindings {
    /// Reads the bindings of every method of every service in `pool`.
    ///
    /// Methods without a `google.api.http` rule are not routed (and not reported); methods whose
    /// rule is invalid are reported in [`Bindings::skipped`].
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        Self::from_services(pool, pool.services())
    }

    /// Like [`Bindings::from_pool`], limited to the given services.
    pub fn from_services(
        pool: &DescriptorPool,
        services: impl IntoIterator<Item = prost_reflect::ServiceDescriptor>,
    ) -> Self {
        let mut out = Self::default();
        let Some(ext) = pool.get_extension_by_name(HTTP_EXTENSION) else {
            return out;
        };
        for service in services {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                let skip = |out: &mut Self, reason: String| {
                    out.skipped.push(Skipped {
                        method: method.full_name().to_owned(),
                        reason,
                    });
                };
                let rule: HttpRule = match options.get_extension(&ext).as_message() {
                    Some(msg) => match msg.transcode_to() {
                        Ok(rule) => rule,
                        Err(e) => {
                            skip(&mut out, format!("unreadable google.api.http rule: {e}"));
                            continue;
                        }
                    },
                    None => continue,
                };
                let mut rules = vec![rule.clone()];
                rules.extend(rule.additional_bindings.iter().cloned());
                let mut built = Vec::new();
                let mut failed = None;
                for (index, r) in rules.iter().enumerate() {
                    match binding(&method, r, index) {
                        Ok(b) => built.push(b),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => skip(&mut out, e.to_string()),
                    None => out.bindings.extend(built),
                }
            }
        }
        out
    }
}

fn binding(method: &MethodDescriptor, rule: &HttpRule, index: usize) -> Result<Binding, RuleError> {
    if index > 0 && !rule.additional_bindings.is_empty() {
        return Err(RuleError::Invalid(
            "additional_bindings must not nest".to_owned(),
        ));
    }
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(p)) => (Method::GET, p.as_str()),
        Some(Pattern::Put(p)) => (Method::PUT, p.as_str()),
        Some(Pattern::Post(p)) => (Method::POST, p.as_str()),
        Some(Pattern::Delete(p)) => (Method::DELETE, p.as_str()),
        Some(Pattern::Patch(p)) => (Method::PATCH, p.as_str()),
        Some(Pattern::Custom(c)) => {
            let m = Method::from_bytes(c.kind.as_bytes()).map_err(|_| {
                RuleError::Invalid(format!(
                    "custom HTTP method {:?} is not a valid token",
                    c.kind
                ))
            })?;
            (m, c.path.as_str())
        }
        None => return Err(RuleError::Invalid("the rule has no pattern".to_owned())),
    };
    let template = PathTemplate::parse(path)?;
    let input = method.input();

    let mut path_fields = Vec::new();
    for var in template.variables() {
        let chain = resolve_field_path(&input, &var.field_path).ok_or_else(|| {
            RuleError::Invalid(format!(
                "path variable {{{}}} names no field of {}",
                var.dotted(),
                input.full_name()
            ))
        })?;
        let leaf = chain
            .last()
            .ok_or_else(|| RuleError::Invalid("empty field path".into()))?;
        if chain.len() > crate::limits::MAX_MESSAGE_DEPTH {
            return Err(RuleError::Invalid(format!(
                "path variable {{{}}} names a field {} levels deep; at most {} are allowed",
                var.dotted(),
                chain.len(),
                crate::limits::MAX_MESSAGE_DEPTH
            )));
        }
        if leaf.is_list() || leaf.is_map() || matches!(leaf.kind(), Kind::Message(_)) {
            return Err(RuleError::Invalid(format!(
                "path variable {{{}}} must name a scalar field",
                var.dotted()
            )));
        }
        path_fields.push(chain);
    }

    let body = match rule.body.as_str() {
        "" => BodyRule::None,
        "*" => BodyRule::Whole,
        name => BodyRule::Field(input.get_field_by_name(name).ok_or_else(|| {
            RuleError::Invalid(format!(
                "body {name:?} names no field of {}",
                input.full_name()
            ))
        })?),
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        name => Some(method.output().get_field_by_name(name).ok_or_else(|| {
            RuleError::Invalid(format!(
                "response_body {name:?} names no field of {}",
                method.output().full_name()
            ))
        })?),
    };

    Ok(Binding {
        method: method.clone(),
        http_method,
        template,
        path_fields,
        body,
        response_body,
        binding_index: index,
    })
}

/// Resolves `a.b.c` to the chain of fields it names, through singular message fields.
pub fn resolve_field_path(
    message: &prost_reflect::MessageDescriptor,
    path: &[String],
) -> Option<Vec<FieldDescriptor>> {
    let mut chain = Vec::with_capacity(path.len());
    let mut current = message.clone();
    for (i, name) in path.iter().enumerate() {
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))?;
        if i + 1 < path.len() {
            match field.kind() {
                Kind::Message(m) if !field.is_list() && !field.is_map() => current = m,
                _ => return None,
            }
        }
        chain.push(field);
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_article_contract_yields_every_binding() {
        let pool = match DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET) {
            Ok(p) => p,
            Err(e) => panic!("embedded descriptors decode: {e}"),
        };
        let b = Bindings::from_pool(&pool);
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        let routes: Vec<_> = b
            .bindings
            .iter()
            .map(|b| format!("{} {} {}", b.http_method, b.template, b.operation_id()))
            .collect();
        assert_eq!(
            routes,
            [
                "GET /articles ArticleList",
                "GET /articles:export ExportArticles",
                "GET /articles:watch WatchArticles",
                "GET /articles/{pk} ArticleDetail",
                "POST /articles CreateArticle",
                "PATCH /articles/{pk} UpdateArticle",
                "PUT /articles/{pk} UpdateArticle2",
                "DELETE /articles/{pk} DeleteArticle",
            ]
        );
    }
}
