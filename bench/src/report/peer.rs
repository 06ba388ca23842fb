//! The side-by-side comparison with a peer gateway (`--peer`), and the performance targets
//! checked against a run's rows: what the README's performance section leads with.
//!
//! Both gateways stand in front of the same in-memory Go backend, driven by the same load
//! client, row after row for each route; a pair is only compared within one scenario and one
//! concurrency.

use std::fmt::Write as _;

use serde::Serialize;

use super::row::Row;
use crate::{
    export::ExportReport,
    stack::Role,
    table::{fmt_cpu, fmt_latency, fmt_rate, render_table},
};

/// Our gateway and the peer on one route at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SideBySide {
    /// `list` or `detail`.
    pub(crate) scenario: String,
    /// Connections.
    pub(crate) connections: usize,
    /// Our requests/s.
    pub(crate) ours_rps: f64,
    /// The peer's requests/s.
    pub(crate) peer_rps: f64,
    /// Ours over the peer's.
    pub(crate) ratio: f64,
    /// Our p50 and p99, µs.
    pub(crate) ours_latency: (f64, f64),
    /// The peer's p50 and p99, µs.
    pub(crate) peer_latency: (f64, f64),
    /// CPU µs per request of our gateway process.
    pub(crate) ours_cpu_us: Option<f64>,
    /// CPU µs per request of the peer's process.
    pub(crate) peer_cpu_us: Option<f64>,
}

/// The process names the stack gives the two gateways in front of the Go backend.
const OURS: &str = "gateway@go";
const PEER: &str = "grpc-gateway";

/// The pairs found in `rows`.
pub(crate) fn side_by_side(rows: &[Row]) -> Vec<SideBySide> {
    let cpu = |row: &Row, process: &str| {
        row.cpu
            .iter()
            .find(|s| s.process == process)
            .map(|s| s.us_per_request)
    };
    rows.iter()
        .filter(|r| r.role == Role::OursOnPeer && r.requests > 0)
        .filter_map(|ours| {
            let peer = rows.iter().find(|r| {
                r.role == Role::Peer
                    && r.scenario == ours.scenario
                    && r.connections == ours.connections
                    && r.requests > 0
            })?;
            Some(SideBySide {
                scenario: ours.scenario.clone(),
                connections: ours.connections,
                ours_rps: ours.requests_per_second,
                peer_rps: peer.requests_per_second,
                ratio: ours.requests_per_second / peer.requests_per_second.max(f64::MIN_POSITIVE),
                ours_latency: (ours.latency.p50_us, ours.latency.p99_us),
                peer_latency: (peer.latency.p50_us, peer.latency.p99_us),
                ours_cpu_us: cpu(ours, OURS),
                peer_cpu_us: cpu(peer, PEER),
            })
        })
        .collect()
}

/// The side-by-side table.
pub(crate) fn render_side_by_side(pairs: &[SideBySide]) -> String {
    let body: Vec<Vec<String>> = pairs
        .iter()
        .map(|p| {
            vec![
                p.scenario.clone(),
                p.connections.to_string(),
                fmt_rate(p.ours_rps),
                fmt_rate(p.peer_rps),
                format!("{:.2}×", p.ratio),
                fmt_latency(p.ours_latency.0),
                fmt_latency(p.peer_latency.0),
                fmt_latency(p.ours_latency.1),
                fmt_latency(p.peer_latency.1),
                p.ours_cpu_us.map_or_else(|| "?".to_owned(), fmt_cpu),
                p.peer_cpu_us.map_or_else(|| "?".to_owned(), fmt_cpu),
            ]
        })
        .collect();
    render_table(
        &[
            "route",
            "conns",
            "ours req/s",
            "grpc-gateway req/s",
            "ours/grpc-gateway",
            "ours p50",
            "theirs p50",
            "ours p99",
            "theirs p99",
            "ours CPU µs/req",
            "theirs CPU µs/req",
        ],
        1,
        &body,
    )
}

/// One performance target and what the run measured for it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TargetCheck {
    /// The target, as the issue states it.
    pub(crate) target: String,
    /// The measured figure.
    pub(crate) measured: String,
    /// Whether it is met; `None` when the run has no row to tell.
    pub(crate) met: Option<bool>,
}

/// The targets of the performance issue, checked against `rows` (of `connections` loaded
/// connections and, when run, one connection).
pub(crate) fn targets(rows: &[Row], pairs: &[SideBySide], connections: usize) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let find = |role: Role, scenario: &str, conns: usize| {
        rows.iter().find(|r| {
            r.role == role && r.scenario == scenario && r.connections == conns && r.requests > 0
        })
    };
    let cpu_of = |row: Option<&Row>, process: &str| {
        row.and_then(|r| r.cpu.iter().find(|s| s.process == process))
            .map(|s| s.us_per_request)
    };
    for scenario in ["list", "detail"] {
        let pair = pairs
            .iter()
            .find(|p| p.scenario == scenario && p.connections == connections);
        checks.push(TargetCheck {
            target: format!("{scenario}: ours/grpc-gateway >= 2.0 req/s at {connections} connections, p99 no worse"),
            measured: pair.map_or_else(
                || "not run (--peer grpc-gateway)".to_owned(),
                |p| {
                    format!(
                        "{:.2}×, p99 {} vs {}",
                        p.ratio,
                        fmt_latency(p.ours_latency.1),
                        fmt_latency(p.peer_latency.1)
                    )
                },
            ),
            met: pair.map(|p| p.ratio >= 2.0 && p.ours_latency.1 <= p.peer_latency.1),
        });
    }
    for (scenario, budget) in [("detail", 40.0), ("list", 55.0)] {
        for (role, process) in [(Role::Gateway, "gateway"), (Role::OursOnPeer, OURS)] {
            let us = cpu_of(find(role, scenario, connections), process);
            checks.push(TargetCheck {
                target: format!("{scenario}: {process} CPU <= {budget:.0} µs per request"),
                measured: us.map_or_else(|| "not run".to_owned(), |u| format!("{u:.0} µs")),
                met: us.map(|u| u <= budget),
            });
        }
    }
    for scenario in ["detail", "list"] {
        let hop = find(Role::Gateway, scenario, 1)
            .zip(find(Role::Grpc, scenario, 1))
            .map(|(g, d)| g.latency.p50_us - d.latency.p50_us);
        checks.push(TargetCheck {
            target: format!("{scenario}: gateway hop at 1 connection < 100 µs added at p50"),
            measured: hop.map_or_else(|| "not run".to_owned(), |h| format!("+{}", fmt_latency(h))),
            met: hop.map(|h| h < 100.0),
        });
    }
    let detail = cpu_of(find(Role::Grpc, "detail", connections), "service");
    checks.push(TargetCheck {
        target: "service: <= 40 µs CPU per ArticleDetail".to_owned(),
        measured: detail.map_or_else(|| "not run".to_owned(), |u| format!("{u:.0} µs")),
        met: detail.map(|u| u <= 40.0),
    });
    let list = find(Role::Grpc, "list", connections).map(|r| r.requests_per_second);
    checks.push(TargetCheck {
        target: format!(
            "service: >= 20,000 ArticleList(page_size=10)/s over gRPC at {connections} connections"
        ),
        measured: list.map_or_else(|| "not run".to_owned(), |r| format!("{}/s", fmt_rate(r))),
        met: list.map(|r| r >= 20_000.0),
    });
    checks
}

/// The targets table.
pub(crate) fn render_targets(checks: &[TargetCheck]) -> String {
    let body: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.target.clone(),
                c.measured.clone(),
                match c.met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "-",
                }
                .to_owned(),
            ]
        })
        .collect();
    let mut out = render_table(&["target", "measured", "status"], 2, &body);
    let _ = writeln!(
        out,
        "(no thresholds: the run's exit status never depends on these)"
    );
    out
}

/// The export target: `ExportArticles` through the gateway as NDJSON at 200,000 messages/s or
/// more, with the gateway's RSS flat ([`ExportReport::rss_flat`]).
pub(crate) fn export_target(export: Option<&ExportReport>) -> TargetCheck {
    TargetCheck {
        target:
            "export: ExportArticles through the gateway as NDJSON >= 200,000 messages/s, flat RSS"
                .to_owned(),
        measured: export.map_or_else(
            || "failed (see the failures)".to_owned(),
            |e| {
                format!(
                    "{}/s over {} messages, RSS {:.1}-{:.1} MiB",
                    fmt_rate(e.rate()),
                    fmt_rate(e.messages as f64),
                    e.gateway_rss_kib.0 as f64 / 1024.0,
                    e.gateway_rss_kib.1 as f64 / 1024.0
                )
            },
        ),
        met: export.map(|e| e.rate() >= 200_000.0 && e.rss_flat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{report::CpuShare, stats::Summary};

    fn row(role: Role, scenario: &str, rps: f64, p99: f64, cpu: &[(&str, f64)]) -> Row {
        Row {
            target: role.label().to_owned(),
            role,
            scenario: scenario.to_owned(),
            connections: 64,
            requests: 100,
            errors: 0,
            seconds: 1.0,
            requests_per_second: rps,
            latency: Summary {
                count: 100,
                p50_us: p99 / 2.0,
                p99_us: p99,
                ..Summary::default()
            },
            error: None,
            cpu: cpu
                .iter()
                .map(|&(process, us)| CpuShare {
                    process: process.to_owned(),
                    us_per_request: us,
                })
                .collect(),
        }
    }

    #[test]
    fn pairs_our_row_with_the_peers_of_the_same_route_and_checks_the_targets() {
        let rows = vec![
            row(Role::OursOnPeer, "detail", 20_000.0, 900.0, &[(OURS, 38.0)]),
            row(Role::Peer, "detail", 9_000.0, 1_000.0, &[(PEER, 90.0)]),
            row(Role::OursOnPeer, "list", 10_000.0, 2_000.0, &[(OURS, 60.0)]),
            row(Role::Peer, "list", 6_000.0, 1_500.0, &[(PEER, 120.0)]),
        ];
        let pairs = side_by_side(&rows);
        assert_eq!(pairs.len(), 2);
        assert!((pairs[0].ratio - 20.0 / 9.0).abs() < 1e-9);
        assert_eq!(
            (pairs[0].ours_cpu_us, pairs[0].peer_cpu_us),
            (Some(38.0), Some(90.0))
        );
        let checks = targets(&rows, &pairs, 64);
        let status = |prefix: &str| {
            checks
                .iter()
                .find(|c| c.target.starts_with(prefix))
                .and_then(|c| c.met)
        };
        assert_eq!(status("detail: ours/grpc-gateway"), Some(true));
        // 1.67× and a worse p99.
        assert_eq!(status("list: ours/grpc-gateway"), Some(false));
        assert_eq!(status("detail: gateway@go CPU"), Some(true));
        assert_eq!(status("list: gateway@go CPU"), Some(false));
        // No row of the real service: nothing claimed either way.
        assert_eq!(status("service: <= 40"), None);
        assert!(render_side_by_side(&pairs).contains("2.22×"));
    }
}
