//! Child processes: finding the sibling binaries, picking free loopback ports, spawning with
//! logs to files, waiting for readiness (which gives the cold start), reading peak and current
//! RSS, noticing an early exit, and killing them or stopping them gracefully with SIGTERM.
//!
//! Every child is spawned with `kill_on_drop`, so an error, a panic or Ctrl-C (which drops the
//! benchmark's future) kills it; [`Proc::stop`] kills it explicitly at the end of a run.
//! A port is picked by binding `127.0.0.1:0` and dropping the listener before the child binds
//! it: another process could take it in between, so a child that exits during start-up is
//! started once more on fresh ports ([`start_with_retry`]).

use std::{
    ffi::OsString,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use http::StatusCode;
use tokio::{
    process::{Child, Command},
    time::Instant,
};

use crate::load::{
    Op,
    grpc::{GrpcConn, GrpcEndpoint},
    rest::{RestEndpoint, get_once},
};

/// What to run when a binary is missing.
pub(crate) const BUILD_HINT: &str =
    "build them first: cargo build --release --workspace --bins (or --bin-dir DIR)";

/// The directory of the service and gateway binaries: `--bin-dir`, else the directory of this
/// executable (the same `target/<profile>/`).
///
/// # Errors
/// The current executable cannot be found.
pub(crate) fn bin_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_owned());
    }
    let exe = std::env::current_exe().context("finding the bench executable")?;
    exe.parent()
        .map(Path::to_owned)
        .context("the bench executable has no directory")
}

/// The path of binary `name` in `dir`.
///
/// # Errors
/// It does not exist (with a hint how to build it).
pub(crate) fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!("{} not found; {BUILD_HINT}", path.display())
    }
}

/// A loopback port that was free a moment ago.
///
/// # Errors
/// Binding `127.0.0.1:0` failed.
pub(crate) fn free_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("picking a free port")?;
    Ok(listener.local_addr()?)
}

/// How to tell that a child is ready.
#[derive(Debug, Clone)]
pub(crate) enum Readiness {
    /// `GET path` answers 200. If it answers 404, `GET fallback` answering 200 counts too.
    Http {
        /// The server.
        endpoint: RestEndpoint,
        /// The readiness path, e.g. `/readyz`.
        path: &'static str,
        /// Tried when `path` is 404.
        fallback: Option<&'static str>,
    },
    /// An `ArticleList` call succeeds.
    Grpc(GrpcEndpoint),
}

impl Readiness {
    async fn probe(&self) -> bool {
        match self {
            Self::Http {
                endpoint,
                path,
                fallback,
            } => match get_once(endpoint, path).await {
                Ok((StatusCode::OK, _)) => true,
                Ok((StatusCode::NOT_FOUND, _)) => match fallback {
                    Some(other) => {
                        matches!(get_once(endpoint, other).await, Ok((StatusCode::OK, _)))
                    }
                    None => false,
                },
                _ => false,
            },
            Self::Grpc(endpoint) => match GrpcConn::connect(endpoint).await {
                Ok(mut conn) => conn
                    .call(&Op::List {
                        page: 1,
                        page_size: 1,
                    })
                    .await
                    .is_ok(),
                Err(_) => false,
            },
        }
    }

    fn poll_interval(&self) -> Duration {
        match self {
            Self::Http { .. } => Duration::from_millis(2),
            Self::Grpc(_) => Duration::from_millis(10),
        }
    }
}

/// Everything needed to start one child.
#[derive(Debug, Clone)]
pub(crate) struct ProcSpec {
    /// A name for reports and logs (`gateway`, `service`, ...).
    pub(crate) name: String,
    /// The executable.
    pub(crate) program: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<OsString>,
    /// Its `RUST_LOG`.
    pub(crate) rust_log: String,
    /// When it counts as started.
    pub(crate) ready: Readiness,
    /// The longest wait for readiness.
    pub(crate) timeout: Duration,
    /// The file its stdout and stderr go to.
    pub(crate) log: PathBuf,
}

/// A running child.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    pid: u32,
    child: Child,
    cold_start: Duration,
    log: PathBuf,
}

/// Why a start failed.
#[derive(Debug)]
enum StartError {
    /// The child exited before it was ready (maybe the port was taken: worth one retry).
    Exited(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

/// Starts a child, waits until it is ready and returns it with its cold start (spawn to first
/// ready answer).
///
/// # Errors
/// Spawn failures, an early exit or no readiness within the timeout (with the log's tail).
pub(crate) async fn start(spec: &ProcSpec) -> Result<Proc> {
    start_once(spec).await.map_err(|err| match err {
        StartError::Exited(e) | StartError::Other(e) => e,
    })
}

/// Like [`start`] with a spec from `make` (which picks fresh ports each time); if the child
/// exits during start-up, it is started once more with a new spec.
///
/// # Errors
/// As [`start`], after the retry.
pub(crate) async fn start_with_retry<T>(
    mut make: impl FnMut() -> Result<(ProcSpec, T)>,
) -> Result<(Proc, T)> {
    let (spec, extra) = make()?;
    match start_once(&spec).await {
        Ok(proc) => Ok((proc, extra)),
        Err(StartError::Other(e)) => Err(e),
        Err(StartError::Exited(first)) => {
            eprintln!(
                "  {} exited during start-up; retrying once: {first:#}",
                spec.name
            );
            let (spec, extra) = make()?;
            let proc = start(&spec).await?;
            Ok((proc, extra))
        }
    }
}

async fn start_once(spec: &ProcSpec) -> Result<Proc, StartError> {
    let log = std::fs::File::create(&spec.log)
        .with_context(|| format!("creating {}", spec.log.display()))
        .map_err(StartError::Other)?;
    let log_err = log
        .try_clone()
        .context("duplicating the log file handle")
        .map_err(StartError::Other)?;
    let spawned = Instant::now();
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .env("RUST_LOG", &spec.rust_log)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", spec.program.display()))
        .map_err(StartError::Other)?;
    let pid = child.id().unwrap_or_default();
    let poll = spec.ready.poll_interval();
    loop {
        if let Some(status) = child
            .try_wait()
            .context("checking the child")
            .map_err(StartError::Other)?
        {
            return Err(StartError::Exited(anyhow::anyhow!(
                "{} exited during start-up ({status}); its log ends with:\n{}",
                spec.name,
                log_tail(&spec.log)
            )));
        }
        if spec.ready.probe().await {
            return Ok(Proc {
                name: spec.name.clone(),
                pid,
                child,
                cold_start: spawned.elapsed(),
                log: spec.log.clone(),
            });
        }
        if spawned.elapsed() > spec.timeout {
            // Kill errors do not matter here: the child is dropped (and killed) anyway.
            let _killed = child.kill().await;
            return Err(StartError::Other(anyhow::anyhow!(
                "{} was not ready after {:?}; its log ends with:\n{}",
                spec.name,
                spec.timeout,
                log_tail(&spec.log)
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

impl Proc {
    /// Its name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Spawn to first ready answer.
    pub(crate) fn cold_start(&self) -> Duration {
        self.cold_start
    }

    /// Its peak resident set (`VmHWM`) in KiB, if `/proc` tells.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        vm_hwm_kib(&status)
    }

    /// Its current resident set (`VmRSS`) in KiB, if `/proc` tells (not once it has exited).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        vm_rss_kib(&status)
    }

    /// Its exit status if it has exited (without waiting), `None` while it runs.
    ///
    /// # Errors
    /// The status could not be checked.
    pub(crate) fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking {}", self.name))
    }

    /// Sends it SIGTERM (with the `kill` command: this crate has no unsafe code for
    /// `libc::kill`) and waits up to `timeout` for it to exit; returns its exit status. If it
    /// is still running after `timeout`, it is killed and that is an error.
    ///
    /// # Errors
    /// It had already exited, `kill` failed, or it did not exit in time.
    pub(crate) async fn terminate(mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exited()? {
            bail!("{} had already exited ({status})", self.name);
        }
        let pid = self.pid.to_string();
        let output = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .output()
            .await
            .context("running `kill -TERM`")?;
        if !output.status.success() {
            bail!(
                "kill -TERM {pid} ({}) failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.with_context(|| format!("waiting for {}", self.name)),
            Err(_elapsed) => {
                // Killed anyway on drop; the error below is what matters.
                let _killed = self.child.kill().await;
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM (killed); its log ends with:\n{}",
                    self.name,
                    log_tail(&self.log)
                )
            }
        }
    }

    /// The last lines of its log.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Kills it and waits for it.
    ///
    /// # Errors
    /// Killing failed (it had already exited is fine).
    pub(crate) async fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child
                .kill()
                .await
                .with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }
}

/// The `VmHWM` (peak RSS) of a `/proc/<pid>/status` text, in KiB.
pub(crate) fn vm_hwm_kib(status: &str) -> Option<u64> {
    status_kib(status, "VmHWM:")
}

/// The `VmRSS` (current RSS) of a `/proc/<pid>/status` text, in KiB.
pub(crate) fn vm_rss_kib(status: &str) -> Option<u64> {
    status_kib(status, "VmRSS:")
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second of the `utime`/`stime` fields of `/proc/<pid>/stat`: Linux reports
/// them in `USER_HZ`, which is 100 on every architecture it exports to user space (asking
/// `sysconf(_SC_CLK_TCK)` would need libc and `unsafe`, which this workspace forbids).
const USER_HZ: f64 = 100.0;

/// The CPU time (user + system, all threads) the process `pid` has used so far, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_seconds(&stat)
}

/// The `utime + stime` of a `/proc/<pid>/stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after the last ')' start with field 3 (state), so utime (14) and stime (15) are the
    // 12th and 13th of them.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The last 20 lines of a log file.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(20);
            if lines.is_empty() {
                "(empty log)".to_owned()
            } else {
                lines[from..].join("\n")
            }
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// Runs `program args` to completion (for one-off commands such as `migrate`).
///
/// # Errors
/// It could not be run or exited unsuccessfully (with its output).
pub(crate) async fn run_to_end(program: &Path, args: &[&str], rust_log: &str) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "{} {} failed ({}):\n{text}",
            program.display(),
            args.join(" "),
            output.status
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(1234));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        assert_eq!(vm_rss_kib(status), Some(1000));
    }

    #[test]
    fn reads_cpu_time_past_an_awkward_command_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 3 0 99";
        assert_eq!(stat_cpu_seconds(stat), Some(3.25));
        assert_eq!(stat_cpu_seconds("42 (x"), None);
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn own_peak_rss_is_readable() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        assert!(vm_hwm_kib(&status).unwrap_or(1) > 0);
    }
}
