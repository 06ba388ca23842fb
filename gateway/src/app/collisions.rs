//! Annotated routes that a gateway path (`/healthz`, `/readyz`, `/metrics`, the OpenAPI
//! routes) hides: the gateway path wins, so such a route can never be reached, and the
//! operator is told at start rather than left to find out.

use crate::{probes, routes::RouteTable, template::split_request_path};

/// Logs a warning for every route of `table` that a gateway path matches.
pub(crate) fn warn(table: &RouteTable) {
    for path in probes::GATEWAY_PATHS {
        let (segments, _) = split_request_path(path, |_| false);
        for route in table.routes() {
            if route.binding.template.is_match(&segments, None) {
                tracing::warn!(
                    path,
                    route = %format_args!("{} {}", route.binding.http_method, route.binding.template),
                    method = route.binding.method.full_name(),
                    "annotated route collides with a gateway path; the gateway path wins"
                );
            }
        }
    }
}
