//! gRPC API Configuration files: the `http` section of a `google.api.Service` document, in
//! YAML or JSON, as grpc-gateway (`grpc_api_configuration`) and Cloud Endpoints read it. Its
//! rules route methods whose protos carry no `google.api.http` annotation (a vendor's API,
//! one the user cannot edit), or replace the annotation of those that do.
//!
//! Read with `marked-yaml` rather than `serde_yaml`: every rule keeps the line it starts on,
//! so an error found only once the rule meets the descriptors (a selector naming no method, a
//! field that does not exist) still names the file and the line. JSON is YAML's flow style,
//! so one reader takes both.

use std::{fmt, path::PathBuf, sync::Arc};

use articles_proto::google::api::{CustomHttpPattern, HttpRule, http_rule::Pattern};
use marked_yaml::{LoaderOptions, Node, Spanned};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Where a rule was written: a file and the line its rule starts on (1-based; 0 when the
/// reader could not tell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, as named on the command line.
    pub file: Arc<str>,
    /// The line of the rule.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A configuration file that cannot be served: at start the gateway does not start, on a
/// reload the served version stays.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file, or one rule of it, is wrong.
    #[error("{origin}: {}{message}", rule.as_ref().map(|r| format!("the rule for {r}: ")).unwrap_or_default())]
    Invalid {
        /// The file and line.
        origin: Origin,
        /// The rule's selector, when the error is one rule's.
        rule: Option<String>,
        /// What is wrong.
        message: String,
    },
}

/// One rule of a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigRule {
    /// The method's full name (`package.Service.Method`, no leading dot).
    pub selector: String,
    /// The rule, as a `google.api.http` annotation would give it.
    pub rule: HttpRule,
    /// Where it was written.
    pub origin: Origin,
}

/// Every configuration file given, read and parsed (their rules not yet checked against the
/// descriptors: [`crate::rules::Bindings::build`] does that).
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// The rules of every file, in file and rule order.
    pub rules: Vec<ConfigRule>,
    /// Whether some file sets `http.fully_decode_reserved_expansion`.
    pub fully_decode_reserved_expansion: bool,
    /// Each file's name, in order.
    pub files: Vec<String>,
    /// The SHA-256 of the files' names and contents; `None` without files, so that an API
    /// served without configuration keeps the version of its descriptors alone.
    pub digest: Option<[u8; 32]>,
}

impl ServiceConfig {
    /// Reads and parses `files`, in order.
    ///
    /// # Errors
    /// The first file that cannot be read or parsed, with its line.
    pub fn read(files: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if files.is_empty() {
            return Ok(config);
        }
        let mut hash = Sha256::new();
        for path in files {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                file: name.clone(),
                source,
            })?;
            hash.update((name.len() as u64).to_be_bytes());
            hash.update(name.as_bytes());
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text.as_bytes());
            config.add(&name, &text)?;
        }
        config.digest = Some(hash.finalize().into());
        Ok(config)
    }

    /// Parses one file's text (named `file` in errors) and adds its rules.
    ///
    /// # Errors
    /// When the text is not a `google.api.Service` document or a rule is malformed.
    pub fn add(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        let file: Arc<str> = Arc::from(file);
        let at = |line: usize, message: String| ConfigError::Invalid {
            origin: Origin {
                file: file.clone(),
                line,
            },
            rule: None,
            message,
        };
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let root = marked_yaml::parse_yaml_with_options(0, text, options)
            .map_err(|e| at(load_error_line(&e), load_error_message(&e)))?;
        let Some(root) = root.as_mapping() else {
            return Err(at(
                1,
                "a google.api.Service document is a mapping".to_owned(),
            ));
        };
        let mut ignored = Vec::new();
        let mut http = None;
        for (key, value) in root.iter() {
            let line = line_of(value);
            match key.as_str() {
                "type" => {
                    let kind = value.as_scalar().map(|s| s.as_str()).unwrap_or_default();
                    if kind != "google.api.Service" {
                        return Err(at(
                            line,
                            format!(
                                "type is {kind:?}; a configuration file is a google.api.Service"
                            ),
                        ));
                    }
                }
                "config_version" | "configVersion" => {
                    let version = value.as_scalar().map(|s| s.as_str()).unwrap_or_default();
                    if version != "3" {
                        return Err(at(
                            line,
                            format!("config_version is {version:?}; only 3 is read"),
                        ));
                    }
                }
                "http" => http = Some(value),
                other => ignored.push(other.to_owned()),
            }
        }
        if !ignored.is_empty() {
            tracing::warn!(
                file = %file,
                sections = ?ignored,
                "configuration sections other than http are ignored"
            );
        }
        self.files.push(file.to_string());
        let Some(http) = http else {
            return Ok(());
        };
        let section = http_section(http).map_err(|(line, message)| at(line, message))?;
        self.fully_decode_reserved_expansion |= section.fully_decode_reserved_expansion;
        for (line, doc) in section.rules {
            let origin = Origin {
                file: file.clone(),
                line,
            };
            let selector = doc
                .selector
                .as_ref()
                .map(|s| s.trim_start_matches('.').to_owned())
                .unwrap_or_default();
            let invalid = |message: String| ConfigError::Invalid {
                origin: origin.clone(),
                rule: (!selector.is_empty()).then(|| selector.clone()),
                message,
            };
            if selector.is_empty() {
                return Err(invalid(
                    "a rule needs a selector (a method's full name)".into(),
                ));
            }
            if selector.contains('*') {
                return Err(invalid(
                    "a selector names one method; wildcards would bind many methods to one path"
                        .into(),
                ));
            }
            let rule = doc.to_rule(true).map_err(invalid)?;
            self.rules.push(ConfigRule {
                selector,
                rule,
                origin,
            });
        }
        Ok(())
    }
}

/// The `http` section: `google.api.Http`, each rule with its line.
struct HttpSection {
    rules: Vec<(usize, RuleDoc)>,
    fully_decode_reserved_expansion: bool,
}

/// Reads the `http` section rule by rule, so that an error in one rule (an unknown key, a
/// value of the wrong type) names that rule's line and selector, not the section's.
fn http_section(http: &Node) -> Result<HttpSection, (usize, String)> {
    let mut section = HttpSection {
        rules: Vec::new(),
        fully_decode_reserved_expansion: false,
    };
    let Some(map) = http.as_mapping() else {
        return Err((line_of(http), "http is a mapping of rules".to_owned()));
    };
    for (key, value) in map.iter() {
        match key.as_str() {
            "rules" => {
                let Some(rules) = value.as_sequence() else {
                    return Err((line_of(value), "http.rules is a list".to_owned()));
                };
                for rule in rules.iter() {
                    let line = line_of(rule);
                    let doc: RuleDoc = marked_yaml::from_node(rule).map_err(|e| {
                        let selector = rule
                            .as_mapping()
                            .and_then(|m| m.get_scalar("selector"))
                            .map(|s| format!("the rule for {}: ", s.as_str()))
                            .unwrap_or_default();
                        (line, format!("{selector}{e}"))
                    })?;
                    section.rules.push((line, doc));
                }
            }
            "fully_decode_reserved_expansion" | "fullyDecodeReservedExpansion" => {
                section.fully_decode_reserved_expansion =
                    marked_yaml::from_node(value).map_err(|e| (line_of(value), format!("{e}")))?;
            }
            other => {
                return Err((
                    line_of(value),
                    format!("http has rules and fully_decode_reserved_expansion, not {other}"),
                ));
            }
        }
    }
    Ok(section)
}

/// One `google.api.HttpRule` as written (proto or JSON field names).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    selector: Option<Spanned<String>>,
    #[serde(default)]
    get: Option<String>,
    #[serde(default)]
    put: Option<String>,
    #[serde(default)]
    post: Option<String>,
    #[serde(default)]
    delete: Option<String>,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    custom: Option<CustomDoc>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, alias = "responseBody")]
    response_body: Option<String>,
    #[serde(default, alias = "additionalBindings")]
    additional_bindings: Vec<Spanned<RuleDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomDoc {
    kind: String,
    path: String,
}

impl RuleDoc {
    /// The rule as the annotation would hold it; `top` for a rule, not for one of its
    /// `additional_bindings`.
    fn to_rule(&self, top: bool) -> Result<HttpRule, String> {
        if !top && self.selector.is_some() {
            return Err("an additional binding has no selector of its own".into());
        }
        if !top && !self.additional_bindings.is_empty() {
            return Err("additional_bindings must not nest".into());
        }
        let mut patterns: Vec<(&str, Pattern)> = Vec::new();
        for (name, path, make) in [
            ("get", &self.get, Pattern::Get as fn(String) -> Pattern),
            ("put", &self.put, Pattern::Put),
            ("post", &self.post, Pattern::Post),
            ("delete", &self.delete, Pattern::Delete),
            ("patch", &self.patch, Pattern::Patch),
        ] {
            if let Some(path) = path {
                patterns.push((name, make(path.clone())));
            }
        }
        if let Some(custom) = &self.custom {
            patterns.push((
                "custom",
                Pattern::Custom(CustomHttpPattern {
                    kind: custom.kind.clone(),
                    path: custom.path.clone(),
                }),
            ));
        }
        let pattern = match patterns.len() {
            0 => return Err("the rule has none of get, put, post, delete, patch, custom".into()),
            1 => patterns.pop().map(|(_, p)| p),
            _ => {
                let names: Vec<&str> = patterns.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "a rule has one of get, put, post, delete, patch, custom; this one has {}",
                    names.join(" and ")
                ));
            }
        };
        let additional_bindings = self
            .additional_bindings
            .iter()
            .map(|b| {
                b.to_rule(false).map_err(|e| {
                    let line = b.span().start().map_or(0, |m| m.line());
                    format!("additional binding at line {line}: {e}")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpRule {
            selector: self
                .selector
                .as_ref()
                .map(|s| s.trim_start_matches('.').to_owned())
                .unwrap_or_default(),
            pattern,
            body: self.body.clone().unwrap_or_default(),
            response_body: self.response_body.clone().unwrap_or_default(),
            additional_bindings,
        })
    }
}

fn line_of(node: &Node) -> usize {
    node.span().start().map_or(0, |m| m.line())
}

/// The line of a parse error, 0 when the reader gives none.
fn load_error_line(error: &marked_yaml::LoadError) -> usize {
    use marked_yaml::LoadError as E;
    match error {
        E::TopLevelMustBeMapping(m)
        | E::TopLevelMustBeSequence(m)
        | E::UnexpectedAnchor(m)
        | E::MappingKeyMustBeScalar(m)
        | E::UnexpectedTag(m)
        | E::ScanError(m, _) => m.line(),
        E::DuplicateKey(inner) => inner.key.span().start().map_or(0, |m| m.line()),
    }
}

/// A parse error's message without the position the reader prefixes (the error names the
/// line itself).
fn load_error_message(error: &marked_yaml::LoadError) -> String {
    use marked_yaml::LoadError as E;
    match error {
        E::TopLevelMustBeMapping(_) => "a google.api.Service document is a mapping".to_owned(),
        E::ScanError(_, e) => format!("not YAML or JSON: {e}"),
        E::DuplicateKey(inner) => format!("{} is given twice", inner.key.as_str()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceConfig, ConfigError> {
        let mut config = ServiceConfig::default();
        config.add("api.yaml", text).map(|()| config)
    }

    #[test]
    fn a_yaml_document_gives_each_rule_with_its_line() {
        let config = parse(
            "type: google.api.Service\nconfig_version: 3\nhttp:\n  rules:\n  - selector: a.B.C\n    get: /c/{id}\n    additional_bindings:\n    - post: /c\n      body: \"*\"\n  - selector: .a.B.D\n    custom: {kind: HEAD, path: /d}\n",
        )
        .expect("valid");
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[0].selector, "a.B.C");
        assert_eq!(config.rules[0].origin.line, 5);
        assert_eq!(config.rules[0].rule.additional_bindings.len(), 1);
        assert_eq!(config.rules[1].selector, "a.B.D");
        assert_eq!(config.rules[1].origin.line, 10);
    }

    #[test]
    fn a_json_document_with_json_names_reads_alike() {
        let config = parse(
            r#"{"type": "google.api.Service", "configVersion": 3, "http": {"fullyDecodeReservedExpansion": true, "rules": [{"selector": "a.B.C", "post": "/c", "body": "*", "responseBody": "x"}]}}"#,
        )
        .expect("valid");
        assert!(config.fully_decode_reserved_expansion);
        assert_eq!(config.rules[0].rule.response_body, "x");
    }

    #[test]
    fn errors_name_the_line_and_the_rule() {
        let two = parse("http:\n  rules:\n  - selector: a.B.C\n    get: /c\n    post: /c\n")
            .expect_err("two patterns");
        assert_eq!(
            two.to_string(),
            "api.yaml:3: the rule for a.B.C: a rule has one of get, put, post, delete, patch, \
             custom; this one has get and post"
        );
        let unknown =
            parse("http:\n  rules:\n  - selector: a.B.C\n    gett: /c\n").expect_err("unknown key");
        assert!(
            unknown
                .to_string()
                .starts_with("api.yaml:3: the rule for a.B.C: Unknown field `gett`"),
            "{unknown}"
        );
        let syntax = parse("http:\n  rules: [\n").expect_err("syntax");
        assert!(syntax.to_string().starts_with("api.yaml:"), "{syntax}");
        let kind = parse("type: google.api.Other\n").expect_err("type");
        assert!(kind.to_string().contains("google.api.Service"), "{kind}");
    }
}
