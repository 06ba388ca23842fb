//! Export (`--deep`): `ExportArticles` of the whole deep-pages database through the gateway, as
//! NDJSON (`GET /articles:export`), over one connection.
//!
//! Counts the messages (lines) as they arrive, the gateway's CPU time over the run, and samples
//! its RSS every [`RSS_EVERY`]: a streaming gateway must not hold the stream, so the RSS stays
//! flat however many rows pass.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::{procs, stack, table::fmt_rate};

/// How often the gateway's RSS is read during the export.
const RSS_EVERY: Duration = Duration::from_millis(100);
/// The longest the export may take before the run gives up on it.
const LIMIT: Duration = Duration::from_secs(300);

/// The export's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExportReport {
    /// Messages (NDJSON lines) received.
    pub(crate) messages: u64,
    /// Bytes received.
    pub(crate) bytes: u64,
    /// From the request to the last byte.
    pub(crate) seconds: f64,
    /// The gateway's CPU time over the export, per message.
    pub(crate) gateway_cpu_us_per_message: Option<f64>,
    /// The gateway's smallest and largest RSS sampled during the export.
    pub(crate) gateway_rss_kib: (u64, u64),
}

impl ExportReport {
    /// Messages per second.
    pub(crate) fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Whether the RSS stayed flat: within 8 MiB from its lowest to its highest sample.
    pub(crate) fn rss_flat(&self) -> bool {
        self.gateway_rss_kib
            .1
            .saturating_sub(self.gateway_rss_kib.0)
            <= 8 * 1024
    }

    /// The result as text.
    pub(crate) fn render(&self) -> String {
        format!(
            "Export (ExportArticles through the gateway as NDJSON, 1 connection, HTTP/1.0): {} messages, {:.1} MB in {:.2} s = {} messages/s; gateway CPU {} µs a message, RSS {:.1}-{:.1} MiB during the export\n",
            fmt_rate(self.messages as f64),
            self.bytes as f64 / 1e6,
            self.seconds,
            fmt_rate(self.rate()),
            self.gateway_cpu_us_per_message
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.2}")),
            self.gateway_rss_kib.0 as f64 / 1024.0,
            self.gateway_rss_kib.1 as f64 / 1024.0,
        )
    }
}

/// Starts a gateway in front of the service at `backend` and exports everything through it.
///
/// # Errors
/// The gateway does not start, the export is refused or breaks, or it takes over [`LIMIT`].
pub(crate) async fn run(
    gateway: &Path,
    backend: SocketAddr,
    rust_log: &str,
    logs: &Path,
) -> Result<ExportReport> {
    let (proc, addr) = stack::start_gateway("export-gateway", gateway, backend, rust_log, logs)
        .await
        .context("starting the export's gateway")?;
    let measured = tokio::time::timeout(LIMIT, export(addr, &proc)).await;
    proc.stop().await?;
    match measured {
        Ok(report) => report,
        Err(_) => bail!("the export took over {} s", LIMIT.as_secs()),
    }
}

/// The export over a plain socket: an HTTP/1.0 request, so the answer is the NDJSON itself up
/// to the close (no chunk framing to take apart), read in large reads as curl would. (Through
/// hyper's client each message arrived as a frame of its own, and the client, not the gateway,
/// set the pace.)
async fn export(addr: SocketAddr, gateway: &procs::Proc) -> Result<ExportReport> {
    let gateway_pid = gateway.pid();
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let request = format!(
        "GET /articles:export HTTP/1.0\r\nHost: {addr}\r\nAccept: application/x-ndjson\r\n\r\n"
    );
    let cpu_before = procs::cpu_seconds(gateway_pid);
    let rss_start = gateway.rss_kib().unwrap_or(0);
    let mut rss = (rss_start, rss_start);
    let started = Instant::now();
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the export")?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut head: Vec<u8> = Vec::new();
    let mut in_body = false;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut sampled = Instant::now();
    // Bounded by the stream's end (and by LIMIT around it).
    loop {
        let n = stream
            .read(&mut buffer)
            .await
            .context("reading the export")?;
        if n == 0 {
            break;
        }
        let mut data = &buffer[..n];
        if !in_body {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let status = String::from_utf8_lossy(&head[..end]);
            if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
                bail!(
                    "the export answered {}",
                    status.lines().next().unwrap_or_default()
                );
            }
            let body_start = end + 4 - (head.len() - n);
            data = &data[body_start..];
            in_body = true;
        }
        bytes += data.len() as u64;
        messages += data.iter().filter(|&&b| b == b'\n').count() as u64;
        if sampled.elapsed() >= RSS_EVERY {
            sampled = Instant::now();
            if let Some(now) = gateway.rss_kib() {
                rss = (rss.0.min(now), rss.1.max(now));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(procs::cpu_seconds(gateway_pid))
        .map(|(before, after)| (after - before) * 1e6 / messages.max(1) as f64);
    Ok(ExportReport {
        messages,
        bytes,
        seconds,
        gateway_cpu_us_per_message: cpu,
        gateway_rss_kib: rss,
    })
}
