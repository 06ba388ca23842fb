//! `--services`: which services get REST routes (Envoy's `services`). The others stay
//! reachable as gRPC on the gateway's port: the filter decides routes, not what the backend
//! serves.

use prost_reflect::{DescriptorPool, ServiceDescriptor};

/// Service names (`package.Service`) and package prefixes (`package.*`); empty admits all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceFilter(Vec<String>);

impl ServiceFilter {
    /// A filter admitting the services `names` name (an empty list admits every service).
    pub fn new(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(
            names
                .into_iter()
                .map(|n| n.into().trim().trim_start_matches('.').to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }

    /// Whether `service` gets routes.
    pub fn admits(&self, service: &ServiceDescriptor) -> bool {
        self.admits_name(service.full_name())
    }

    /// Whether the service of this full name gets routes.
    pub fn admits_name(&self, service: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|pattern| matches(pattern, service))
    }

    /// The patterns that admit no service of `pool`: most likely a typo, worth a warning.
    pub fn unmatched(&self, pool: &DescriptorPool) -> Vec<&str> {
        self.0
            .iter()
            .filter(|pattern| !pool.services().any(|s| matches(pattern, s.full_name())))
            .map(String::as_str)
            .collect()
    }
}

fn matches(pattern: &str, service: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        // `pkg.*`: the package and its subpackages.
        Some(package) => service
            .strip_prefix(package)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_package_prefixes_admit_their_services_only() {
        let filter = ServiceFilter::new(["a.v1.Shelf", "b.*"]);
        assert!(filter.admits_name("a.v1.Shelf"));
        assert!(!filter.admits_name("a.v1.Shelves"));
        assert!(!filter.admits_name("a.v1"));
        assert!(filter.admits_name("b.Svc"));
        assert!(filter.admits_name("b.v2.Svc"));
        assert!(!filter.admits_name("bb.Svc"));
        assert!(ServiceFilter::default().admits_name("anything.At.All"));
    }
}
