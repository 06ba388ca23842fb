//! The HTTP bindings of an API, from three sources, in this order of precedence: a rule of a
//! gRPC API Configuration file ([`service_config`]), the method's `google.api.http`
//! annotation, and, with auto-mapping, `POST /{package}.{Service}/{Method}` with the whole
//! request as body (Envoy's `auto_mapping`, grpc-gateway's `generate_unbound_methods`).
//! [`ServiceFilter`] limits which services get routes at all (Envoy's `services`).
//!
//! [`Bindings::build`] walks every service in a descriptor pool once per version of the API,
//! turns each rule and each of its `additional_bindings` into a [`Binding`] (unary and
//! streaming methods alike). An annotation the gateway cannot read sets its method aside
//! with the reason, to be logged: the descriptors are the backend's, and one bad method must
//! not take the others down. A configuration file's rule is the operator's, so a rule that
//! does not fit the descriptors is an error naming its file and line. Both the router and the
//! OpenAPI generator consume these bindings: what the spec documents is exactly what the
//! gateway routes.

mod service_config;
mod services;

use std::{collections::HashMap, fmt, path::PathBuf};

use articles_proto::google::api::{HttpRule, http_rule::Pattern};
use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MethodDescriptor, ServiceDescriptor};

pub use self::{
    service_config::{ConfigError, ConfigRule, Origin, ServiceConfig},
    services::ServiceFilter,
};
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
    /// Where the rule came from.
    pub source: RuleSource,
    /// `http.fully_decode_reserved_expansion` of the configuration: multi-segment variables
    /// are decoded whole, `%2F` included.
    pub fully_decode_reserved_expansion: bool,
    /// Unique among the bindings of its version: the method name (suffixed for additional
    /// bindings), qualified by its service when two services share a method name.
    operation_id: String,
}

/// Where a binding's rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// The method's `google.api.http` annotation.
    Annotation,
    /// A rule of a configuration file.
    Config(Origin),
    /// Auto-mapping: the method had no rule.
    Auto,
}

impl RuleSource {
    /// Its kind, as `/readyz` counts them: `annotation`, `configuration` or `auto`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Annotation => "annotation",
            Self::Config(_) => "configuration",
            Self::Auto => "auto",
        }
    }
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Annotation => f.write_str("annotation"),
            Self::Config(origin) => write!(f, "{origin}"),
            Self::Auto => f.write_str("auto-mapping"),
        }
    }
}

impl Binding {
    /// Whether either side of the method streams.
    pub fn is_streaming(&self) -> bool {
        self.method.is_client_streaming() || self.method.is_server_streaming()
    }

    /// A stable operation id: the method name, suffixed for additional bindings, qualified
    /// by its service (`Service_Method`, as grpc-gateway names them) when another routed
    /// service has a method of the same name.
    pub fn operation_id(&self) -> String {
        self.operation_id.clone()
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

/// Every source of bindings besides the annotations, as one version of the API reads them.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// The configuration files' rules.
    pub config: ServiceConfig,
    /// Whether methods without a rule are routed at `POST /{package}.{Service}/{Method}`.
    pub auto: bool,
    /// Which services get routes.
    pub services: ServiceFilter,
}

/// Where each version reads its [`Mapping`] from: the files are read again at each reload,
/// with the descriptors, and swapped in with them as one version.
#[derive(Debug, Clone, Default)]
pub struct MappingOptions {
    /// The gRPC API Configuration files, in order.
    pub files: Vec<PathBuf>,
    /// Auto-mapping.
    pub auto: bool,
    /// Which services get routes.
    pub services: ServiceFilter,
}

impl MappingOptions {
    /// Reads the configuration files.
    ///
    /// # Errors
    /// A file that cannot be read or parsed.
    pub fn load(&self) -> Result<Mapping, ConfigError> {
        Ok(Mapping {
            config: ServiceConfig::read(&self.files)?,
            auto: self.auto,
            services: self.services.clone(),
        })
    }
}

/// Services whose methods are never auto-mapped: the gateway's port already serves them as
/// gRPC, and as REST they would only expose the backend's internals.
const NEVER_AUTO_MAPPED: [&str; 2] = ["grpc.reflection.", "grpc.health."];

impl Bindings {
    /// The bindings of the `google.api.http` annotations of every service in `pool`.
    ///
    /// Methods without a rule are not routed (and not reported); methods whose rule is
    /// invalid are reported in [`Bindings::skipped`].
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        let mut out = Self::annotated(pool, &Mapping::default());
        qualify_shared_operation_ids(&mut out.bindings);
        out
    }

    /// The bindings of `pool` under `mapping`: configuration rules first, then annotations,
    /// then auto-mapping, for the services the filter admits.
    ///
    /// # Errors
    /// A configuration rule whose selector names no method of `pool`, which repeats another
    /// rule's selector, or which does not fit its method (a template that does not parse, a
    /// field that does not exist): named by its file and line.
    pub fn build(pool: &DescriptorPool, mapping: &Mapping) -> Result<Self, ConfigError> {
        // In file and rule order, so the first error reported is the first in the files.
        // Every rule is checked against its method, routed or not, so that an error does not
        // wait for a --services change to show.
        let mut from_config: HashMap<&str, (&Origin, Vec<Binding>)> = HashMap::new();
        for rule in &mapping.config.rules {
            let invalid = |message: String| ConfigError::Invalid {
                origin: rule.origin.clone(),
                rule: Some(rule.selector.clone()),
                message,
            };
            let method = find_method(pool, &rule.selector)
                .ok_or_else(|| invalid("the selector names no method of the descriptors".into()))?;
            if let Some((first, _)) = from_config.get(rule.selector.as_str()) {
                return Err(invalid(format!(
                    "the method already has the rule at {first}"
                )));
            }
            let source = RuleSource::Config(rule.origin.clone());
            let built = bindings_of(&method, &rule.rule, &source, mapping)
                .map_err(|e| invalid(e.to_string()))?;
            from_config.insert(rule.selector.as_str(), (&rule.origin, built));
        }
        let mut out = Self::annotated(pool, mapping);
        // Annotated methods a configuration rule replaces, and auto-mapping, in one pass in
        // service and method order.
        let mut ordered = Vec::with_capacity(out.bindings.len());
        let mut annotated = std::mem::take(&mut out.bindings).into_iter().peekable();
        for service in pool.services().filter(|s| mapping.services.admits(s)) {
            for method in service.methods() {
                let mut own = Vec::new();
                while let Some(b) = annotated.next_if(|b| b.method == method) {
                    own.push(b);
                }
                if let Some((origin, built)) = from_config.remove(method.full_name()) {
                    if !own.is_empty() || out.skipped.iter().any(|s| s.method == method.full_name())
                    {
                        tracing::info!(
                            method = method.full_name(),
                            rule = %origin,
                            "a configuration rule replaces the method's annotation"
                        );
                        out.skipped.retain(|s| s.method != method.full_name());
                    }
                    ordered.extend(built);
                } else if !own.is_empty() {
                    ordered.extend(own);
                } else if mapping.auto
                    && !out.skipped.iter().any(|s| s.method == method.full_name())
                    && !NEVER_AUTO_MAPPED
                        .iter()
                        .any(|p| service.full_name().starts_with(p))
                {
                    match auto_binding(&method, mapping) {
                        Ok(b) => ordered.push(b),
                        Err(e) => out.skipped.push(Skipped {
                            method: method.full_name().to_owned(),
                            reason: format!("auto-mapping: {e}"),
                        }),
                    }
                }
            }
        }
        out.bindings = ordered;
        qualify_shared_operation_ids(&mut out.bindings);
        Ok(out)
    }

    /// The annotated bindings of the services `mapping` admits, in service and method order.
    fn annotated(pool: &DescriptorPool, mapping: &Mapping) -> Self {
        let mut out = Self::default();
        let Some(ext) = pool.get_extension_by_name(HTTP_EXTENSION) else {
            return out;
        };
        for service in pool.services().filter(|s| mapping.services.admits(s)) {
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
                match bindings_of(&method, &rule, &RuleSource::Annotation, mapping) {
                    Ok(built) => out.bindings.extend(built),
                    Err(e) => skip(&mut out, e.to_string()),
                }
            }
        }
        out
    }

    /// How many bindings came from each kind of source, in the order annotation,
    /// configuration, auto.
    pub fn counts(&self) -> [(&'static str, usize); 3] {
        let count = |kind: &str| {
            self.bindings
                .iter()
                .filter(|b| b.source.kind() == kind)
                .count()
        };
        [
            ("annotation", count("annotation")),
            ("configuration", count("configuration")),
            ("auto", count("auto")),
        ]
    }
}

/// The method a selector (`package.Service.Method`) names.
fn find_method(pool: &DescriptorPool, selector: &str) -> Option<MethodDescriptor> {
    let (service, method) = selector.rsplit_once('.')?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// The rule and each of its `additional_bindings`, all or none.
fn bindings_of(
    method: &MethodDescriptor,
    rule: &HttpRule,
    source: &RuleSource,
    mapping: &Mapping,
) -> Result<Vec<Binding>, RuleError> {
    let mut rules = vec![rule.clone()];
    rules.extend(rule.additional_bindings.iter().cloned());
    rules
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let mut b = binding(method, r, index)?;
            b.source = source.clone();
            b.fully_decode_reserved_expansion = mapping.config.fully_decode_reserved_expansion;
            Ok(b)
        })
        .collect()
}

/// `POST /{package}.{Service}/{Method}`, `body: "*"`: the gRPC path itself, so a client that
/// knows the method knows its route.
fn auto_binding(method: &MethodDescriptor, mapping: &Mapping) -> Result<Binding, RuleError> {
    let service: &ServiceDescriptor = method.parent_service();
    let rule = HttpRule {
        pattern: Some(Pattern::Post(format!(
            "/{}/{}",
            service.full_name(),
            method.name()
        ))),
        body: "*".to_owned(),
        ..HttpRule::default()
    };
    let mut b = binding(method, &rule, 0)?;
    b.source = RuleSource::Auto;
    b.fully_decode_reserved_expansion = mapping.config.fully_decode_reserved_expansion;
    Ok(b)
}

/// Qualifies by service the operation ids two services share (OTLP's three `Export`s), so
/// that the OpenAPI document's ids stay unique; ids no other service has stay as they were.
/// Services of one name in two packages are told apart by their full names.
fn qualify_shared_operation_ids(bindings: &mut [Binding]) {
    let qualifiers: [fn(&Binding) -> String; 2] = [
        |b: &Binding| b.method.parent_service().name().to_owned(),
        |b: &Binding| b.method.parent_service().full_name().replace('.', "_"),
    ];
    for qualify in qualifiers {
        let mut services_by_id: HashMap<&str, Vec<String>> = HashMap::new();
        for b in bindings.iter() {
            let services = services_by_id.entry(b.operation_id.as_str()).or_default();
            let service = b.method.parent_service().full_name().to_owned();
            if !services.contains(&service) {
                services.push(service);
            }
        }
        let shared: std::collections::HashSet<String> = services_by_id
            .into_iter()
            .filter(|(_, services)| services.len() > 1)
            .map(|(id, _)| id.to_owned())
            .collect();
        if shared.is_empty() {
            return;
        }
        for b in bindings.iter_mut() {
            if shared.contains(&b.operation_id) {
                b.operation_id = format!("{}_{}", qualify(b), unqualified_id(b));
            }
        }
    }
}

/// The method name, suffixed for additional bindings.
fn unqualified_id(binding: &Binding) -> String {
    if binding.binding_index == 0 {
        binding.method.name().to_owned()
    } else {
        format!("{}{}", binding.method.name(), binding.binding_index + 1)
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

    let mut binding = Binding {
        method: method.clone(),
        http_method,
        template,
        path_fields,
        body,
        response_body,
        binding_index: index,
        source: RuleSource::Annotation,
        fully_decode_reserved_expansion: false,
        operation_id: String::new(),
    };
    binding.operation_id = unqualified_id(&binding);
    Ok(binding)
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
