//! The system under test: starting our processes on loopback (or naming external targets) and
//! turning them into the [`Target`]s the suite drives.
//!
//! In order: the service (`articles-service serve`, SQLite in a temporary directory, demo
//! articles), the gateway in front of it (`articles-gateway serve --backend`), the service with
//! the gateway mounted in-process (`serve --rest`, only if its `--help` lists `--rest`), and the
//! ceiling (`bench bare-server`, fed the gateway's real answers). A target that cannot start is
//! recorded as a failure and the others still run.

use std::{ffi::OsString, net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail};
use http::StatusCode;
use serde::Serialize;
use tempfile::TempDir;

use crate::{
    config::{Peer, Settings},
    load::{
        Endpoint,
        grpc::GrpcEndpoint,
        rest::{RestEndpoint, get_once},
    },
    procs::{self, Proc, ProcSpec, Readiness},
};

/// What a target is, for ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    /// REST through the gateway, a separate process.
    Gateway,
    /// REST through the gateway mounted in the service process.
    InProcess,
    /// gRPC straight to the service.
    Grpc,
    /// The bare axum server with the same bytes.
    Ceiling,
    /// Our gateway in front of the peer's Go backend.
    OursOnPeer,
    /// The peer gateway (grpc-gateway) in front of the same Go backend.
    Peer,
    /// gRPC straight to the peer's Go backend.
    PeerDirect,
}

impl Role {
    /// The table label of our own target of this role.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::InProcess => "in-process",
            Self::Grpc => "grpc-direct",
            Self::Ceiling => "ceiling",
            Self::OursOnPeer => "gateway@go",
            Self::Peer => "grpc-gateway@go",
            Self::PeerDirect => "grpc-direct@go",
        }
    }
}

/// One thing to drive.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) role: Role,
    /// Its label in tables.
    pub(crate) label: String,
    /// Where it listens.
    pub(crate) endpoint: Endpoint,
}

/// A started (or named) system under test.
#[derive(Debug)]
pub(crate) struct Stack {
    /// The targets, in the order of [`Role`].
    pub(crate) targets: Vec<Target>,
    /// Our child processes.
    pub(crate) procs: Vec<Proc>,
    /// Things the report should mention (skipped rows...).
    pub(crate) notes: Vec<String>,
    /// Targets that could not be started.
    pub(crate) failures: Vec<String>,
    tmp: TempDir,
}

/// One child's start-up and memory numbers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProcessInfo {
    /// `service`, `gateway`, `in-process`, `ceiling`.
    pub(crate) name: String,
    pub(crate) pid: u32,
    /// Spawn to first ready answer, in milliseconds.
    pub(crate) cold_start_ms: f64,
    /// Peak RSS (`VmHWM`) at the end of the run, in KiB.
    pub(crate) peak_rss_kib: Option<u64>,
}

const LIST_PATH: &str = "/articles?page=1&page_size=10";
const DETAIL_PATH: &str = "/articles/1";

impl Stack {
    /// Starts our processes, or names the external targets of `--rest-url`/`--grpc-url`.
    ///
    /// # Errors
    /// No temporary directory, a missing binary, an invalid external URL. Targets that fail to
    /// start are in [`Stack::failures`] instead.
    pub(crate) async fn start(settings: &Settings) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("articles-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut stack = Self {
            targets: Vec::new(),
            procs: Vec::new(),
            notes: Vec::new(),
            failures: Vec::new(),
            tmp,
        };
        if settings.external() {
            stack.name_external(settings).await?;
        } else {
            stack.start_ours(settings).await?;
        }
        Ok(stack)
    }

    /// The temporary directory (databases, logs, bodies).
    pub(crate) fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    async fn name_external(&mut self, settings: &Settings) -> Result<()> {
        if let Some(url) = &settings.rest_url {
            self.targets.push(Target {
                role: Role::Gateway,
                label: "rest-external".to_owned(),
                endpoint: Endpoint::Rest(RestEndpoint::parse(url).await?),
            });
        }
        if let Some(url) = &settings.grpc_url {
            self.targets.push(Target {
                role: Role::Grpc,
                label: "grpc-external".to_owned(),
                endpoint: Endpoint::Grpc(GrpcEndpoint::parse(url).await?),
            });
        }
        self.notes
            .push("external targets: no processes started, no RSS or cold start".to_owned());
        Ok(())
    }

    async fn start_ours(&mut self, settings: &Settings) -> Result<()> {
        let dir = procs::bin_dir(settings.bin_dir.as_deref())?;
        let service_bin = procs::binary(&dir, "articles-service")?;
        let gateway_bin = procs::binary(&dir, "articles-gateway")?;
        let bench_bin = std::env::current_exe().context("finding the bench executable")?;

        eprintln!(
            "starting articles-service ({} demo articles)...",
            settings.articles
        );
        let grpc_addr = match self.start_service(settings, &service_bin).await {
            Ok(addr) => Some(addr),
            Err(err) => {
                self.failures.push(format!("service: {err:#}"));
                None
            }
        };
        if let Some(backend) = grpc_addr {
            eprintln!("starting articles-gateway...");
            if let Err(err) = self
                .start_gateway(settings, &gateway_bin, backend, Role::Gateway)
                .await
            {
                self.failures.push(format!("gateway: {err:#}"));
            }
        }
        if has_rest_flag(&service_bin, &settings.child_log).await {
            eprintln!("starting articles-service --rest (in-process gateway)...");
            if let Err(err) = self.start_in_process(settings, &service_bin).await {
                self.failures.push(format!("in-process: {err:#}"));
            }
        } else {
            self.notes.push(
                "in-process rows skipped: `articles-service serve --help` has no --rest flag"
                    .to_owned(),
            );
        }
        let source = self
            .targets
            .iter()
            .find(|t| matches!(t.role, Role::Gateway | Role::InProcess))
            .cloned();
        match source {
            Some(source) => {
                eprintln!(
                    "starting the ceiling (bare axum) with {}'s bodies...",
                    source.label
                );
                if let Err(err) = self.start_ceiling(settings, &bench_bin, &source).await {
                    self.failures.push(format!("ceiling: {err:#}"));
                }
            }
            None => self
                .notes
                .push("ceiling skipped: no REST target to take its bodies from".to_owned()),
        }
        if let Some(peer) = settings.peer
            && let Err(err) = self.start_peer(settings, peer, &dir, &gateway_bin).await
        {
            self.failures.push(format!("peer: {err:#}"));
        }
        self.targets.sort_by_key(|t| t.role as u8);
        Ok(())
    }

    /// Builds the peer (idempotently), starts its Go backend, and in front of it both our
    /// gateway and the peer gateway, with the same flags a user would give each.
    async fn start_peer(
        &mut self,
        settings: &Settings,
        peer: Peer,
        bin_dir: &Path,
        gateway_bin: &Path,
    ) -> Result<()> {
        let Peer::GrpcGateway = peer;
        let out = match &settings.peer_dir {
            Some(dir) => dir.clone(),
            None => bin_dir
                .parent()
                .map_or_else(|| bin_dir.join("peer"), |p| p.join("peer")),
        };
        eprintln!(
            "building the peer (grpc-gateway, Go) into {}...",
            out.display()
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peer/build.sh");
        let built = tokio::process::Command::new("bash")
            .arg(&script)
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", script.display()))?;
        if !built.status.success() {
            bail!(
                "{} failed ({}):\n{}{}",
                script.display(),
                built.status,
                String::from_utf8_lossy(&built.stdout),
                String::from_utf8_lossy(&built.stderr)
            );
        }
        let backend_bin = procs::binary(&out, "articles-peer-backend")?;
        let peer_bin = procs::binary(&out, "articles-peer-gateway")?;

        eprintln!(
            "starting the peer's Go backend ({} articles)...",
            settings.articles
        );
        let (proc, backend) = procs::start_with_retry(|| {
            let addr = procs::free_addr()?;
            let args = os_args(&[
                "-addr",
                &addr.to_string(),
                "-articles",
                &settings.articles.to_string(),
            ]);
            let ready = Readiness::Grpc(GrpcEndpoint::local(addr));
            let spec = self.spec(
                "go-backend",
                &backend_bin,
                args,
                ready,
                settings,
                Duration::from_secs(30),
            );
            Ok((spec, addr))
        })
        .await?;
        self.procs.push(proc);
        self.push_grpc(Role::PeerDirect, backend);

        eprintln!("starting articles-gateway in front of the Go backend...");
        self.start_gateway(settings, gateway_bin, backend, Role::OursOnPeer)
            .await?;

        eprintln!("starting grpc-gateway in front of the Go backend...");
        let (proc, addr) = procs::start_with_retry(|| {
            let addr = procs::free_addr()?;
            let args = os_args(&["-addr", &addr.to_string(), "-backend", &backend.to_string()]);
            let spec = self.spec(
                "grpc-gateway",
                &peer_bin,
                args,
                readyz(addr),
                settings,
                Duration::from_secs(30),
            );
            Ok((spec, addr))
        })
        .await?;
        self.procs.push(proc);
        self.push_rest(Role::Peer, addr);
        Ok(())
    }

    fn spec(
        &self,
        name: &str,
        program: &Path,
        args: Vec<OsString>,
        ready: Readiness,
        settings: &Settings,
        timeout: Duration,
    ) -> ProcSpec {
        spec(
            name,
            program,
            args,
            ready,
            &settings.child_log,
            self.tmp(),
            timeout,
        )
    }

    async fn start_service(&mut self, settings: &Settings, bin: &Path) -> Result<SocketAddr> {
        let db = sqlite_url(&self.tmp().join("bench.db"));
        let (proc, addr) = start_service(
            bin,
            &db,
            settings.articles,
            &[],
            &settings.child_log,
            self.tmp(),
        )
        .await?;
        self.procs.push(proc);
        self.push_grpc(Role::Grpc, addr);
        Ok(addr)
    }

    async fn start_gateway(
        &mut self,
        settings: &Settings,
        bin: &Path,
        backend: SocketAddr,
        role: Role,
    ) -> Result<()> {
        // The process is named as the CPU table's column: `gateway`, `gateway@go`.
        let (proc, addr) =
            start_gateway(role.label(), bin, backend, &settings.child_log, self.tmp()).await?;
        self.procs.push(proc);
        self.push_rest(role, addr);
        Ok(())
    }

    async fn start_in_process(&mut self, settings: &Settings, bin: &Path) -> Result<()> {
        let db = sqlite_url(&self.tmp().join("bench-in-process.db"));
        let (proc, rest) = procs::start_with_retry(|| {
            let grpc = procs::free_addr()?;
            let rest = procs::free_addr()?;
            let mut args = serve_args(grpc, &db, settings.articles);
            args.extend(os_args(&["--rest", &rest.to_string()]));
            let ready = readyz(rest);
            let spec = self.spec(
                "in-process",
                bin,
                args,
                ready,
                settings,
                Duration::from_secs(180),
            );
            Ok((spec, rest))
        })
        .await?;
        self.procs.push(proc);
        self.push_rest(Role::InProcess, rest);
        Ok(())
    }

    async fn start_ceiling(
        &mut self,
        settings: &Settings,
        bench: &Path,
        source: &Target,
    ) -> Result<()> {
        let Endpoint::Rest(endpoint) = &source.endpoint else {
            bail!("{} is not a REST target", source.label);
        };
        let list_file = self.tmp().join("list.json");
        let detail_file = self.tmp().join("detail.json");
        for (path, file) in [(LIST_PATH, &list_file), (DETAIL_PATH, &detail_file)] {
            let body = fetch_body(endpoint, path).await?;
            std::fs::write(file, &body).with_context(|| format!("writing {}", file.display()))?;
        }
        let (proc, addr) = procs::start_with_retry(|| {
            let addr = procs::free_addr()?;
            let mut args = os_args(&["bare-server", "--listen", &addr.to_string()]);
            args.extend([
                "--list-body".into(),
                list_file.clone().into_os_string(),
                "--detail-body".into(),
                detail_file.clone().into_os_string(),
            ]);
            let ready = readyz(addr);
            let spec = self.spec(
                "ceiling",
                bench,
                args,
                ready,
                settings,
                Duration::from_secs(30),
            );
            Ok((spec, addr))
        })
        .await?;
        self.procs.push(proc);
        self.push_rest(Role::Ceiling, addr);
        Ok(())
    }

    fn push_grpc(&mut self, role: Role, addr: SocketAddr) {
        self.targets.push(Target {
            role,
            label: role.label().to_owned(),
            endpoint: Endpoint::Grpc(GrpcEndpoint::local(addr)),
        });
    }

    fn push_rest(&mut self, role: Role, addr: SocketAddr) {
        self.targets.push(Target {
            role,
            label: role.label().to_owned(),
            endpoint: Endpoint::Rest(RestEndpoint::local(addr)),
        });
    }

    /// Reads every child's peak RSS, then kills them all (the temporary directory stays until
    /// the stack is dropped).
    ///
    /// # Errors
    /// A child could not be killed (the others are still killed).
    pub(crate) async fn stop(&mut self) -> Result<Vec<ProcessInfo>> {
        let infos = self
            .procs
            .iter()
            .map(|p| ProcessInfo {
                name: p.name().to_owned(),
                pid: p.pid(),
                cold_start_ms: p.cold_start().as_secs_f64() * 1000.0,
                peak_rss_kib: p.peak_rss_kib(),
            })
            .collect();
        let mut first_error = Ok(());
        for proc in std::mem::take(&mut self.procs) {
            let stopped = proc.stop().await;
            if first_error.is_ok() {
                first_error = stopped;
            }
        }
        first_error.map(|()| infos)
    }
}

/// `sqlite://PATH` for a file path.
/// How to start child `name`: its log goes to `logs/NAME.log`.
fn spec(
    name: &str,
    program: &Path,
    args: Vec<OsString>,
    ready: Readiness,
    rust_log: &str,
    logs: &Path,
    timeout: Duration,
) -> ProcSpec {
    ProcSpec {
        name: name.to_owned(),
        program: program.to_owned(),
        args,
        rust_log: rust_log.to_owned(),
        ready,
        timeout,
        log: logs.join(format!("{name}.log")),
    }
}

/// Starts `articles-service serve` (the benchmark's and the soak's) on a free loopback port,
/// on `db` with `articles` demo articles and `extra` flags; ready once gRPC answers.
pub(crate) async fn start_service(
    bin: &Path,
    db: &str,
    articles: u32,
    extra: &[&str],
    rust_log: &str,
    logs: &Path,
) -> Result<(Proc, SocketAddr)> {
    procs::start_with_retry(|| {
        let addr = procs::free_addr()?;
        let mut args = serve_args(addr, db, articles);
        args.extend(os_args(extra));
        let ready = Readiness::Grpc(GrpcEndpoint::local(addr));
        let spec = spec(
            "service",
            bin,
            args,
            ready,
            rust_log,
            logs,
            Duration::from_secs(180),
        );
        Ok((spec, addr))
    })
    .await
}

/// Starts `articles-gateway serve` as child `name` on a free loopback port in front of
/// `backend`; ready once `/readyz` answers.
pub(crate) async fn start_gateway(
    name: &str,
    bin: &Path,
    backend: SocketAddr,
    rust_log: &str,
    logs: &Path,
) -> Result<(Proc, SocketAddr)> {
    procs::start_with_retry(|| {
        let addr = procs::free_addr()?;
        let args = os_args(&[
            "serve",
            "--listen",
            &addr.to_string(),
            "--backend",
            &format!("http://{backend}"),
        ]);
        let spec = spec(
            name,
            bin,
            args,
            readyz(addr),
            rust_log,
            logs,
            Duration::from_secs(60),
        );
        Ok((spec, addr))
    })
    .await
}

pub(crate) fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Owned arguments from string slices.
pub(crate) fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// `serve --listen ADDR --database-url URL --demo-articles N` for `articles-service`.
pub(crate) fn serve_args(listen: SocketAddr, database_url: &str, articles: u32) -> Vec<OsString> {
    os_args(&[
        "serve",
        "--listen",
        &listen.to_string(),
        "--database-url",
        database_url,
        "--demo-articles",
        &articles.to_string(),
    ])
}

/// Ready when `GET /readyz` is 200 (or, if the server has no `/readyz`, when the first list
/// page is).
pub(crate) fn readyz(addr: SocketAddr) -> Readiness {
    Readiness::Http {
        endpoint: RestEndpoint::local(addr),
        path: "/readyz",
        fallback: Some("/articles?page=1&page_size=1"),
    }
}

async fn fetch_body(endpoint: &RestEndpoint, path: &str) -> Result<bytes::Bytes> {
    let (status, body) = get_once(endpoint, path)
        .await
        .with_context(|| format!("fetching {path} for the ceiling"))?;
    if status != StatusCode::OK {
        bail!(
            "GET {path} answered {status}, not 200: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// Whether `articles-service serve --help` lists a `--rest` flag.
async fn has_rest_flag(service_bin: &Path, rust_log: &str) -> bool {
    match procs::run_to_end(service_bin, &["serve", "--help"], rust_log).await {
        Ok(help) => help_lists_flag(&help, "--rest"),
        Err(_) => false,
    }
}

/// Whether a `--help` text lists `flag` (exactly, not as a prefix of another flag).
fn help_lists_flag(help: &str, flag: &str) -> bool {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == ']')
        .any(|word| word == flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flags_in_help_text() {
        let help = "Options:\n      --rest <REST>  Also serve REST\n      --rest-timeout <T>\n";
        assert!(help_lists_flag(help, "--rest"));
        assert!(!help_lists_flag("      --rest-timeout <T>\n", "--rest"));
    }
}
