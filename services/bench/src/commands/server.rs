//! The servers the command benchmark measures, each in a child process: found beside the
//! bench's own binary, started on a port of their choosing, stopped with SIGTERM.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::{AUDIENCE, ISSUER};
use crate::{Args, pool_size};

/// How long a server may take to listen and report ready (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines kept per server, shown when it fails.
const TAIL_LINES: usize = 20;

/// Whether a binary was found.
#[derive(Debug)]
pub(super) enum Found {
    Yes(Binary),
    /// Not found, and allowed to be missing: why.
    Skipped(String),
}

/// A server binary beside the bench's own (`target/release` or `target/debug`), or given.
#[derive(Debug)]
pub(super) struct Binary {
    pub(super) path: PathBuf,
}

impl Binary {
    /// `eventline`, from `--eventline-bin` or beside this executable; it must exist.
    pub(super) fn eventline(args: &Args) -> anyhow::Result<Self> {
        let (path, release) = beside_me(args.eventline_bin.as_deref(), "eventline")?;
        if !path.is_file() {
            bail!(
                "{} does not exist: build it with `cargo build{} -p eventline` (or pass \
                 --eventline-bin PATH)",
                path.display(),
                if release { " --release" } else { "" }
            );
        }
        Ok(Binary { path })
    }

    /// The cqrs-es reference, from `--reference-bin` or beside this executable. Missing, it is
    /// skipped in a smoke run and an error otherwise.
    pub(super) fn reference(args: &Args) -> anyhow::Result<Found> {
        let (path, release) = beside_me(args.reference_bin.as_deref(), "cqrs-es-reference")?;
        if path.is_file() {
            return Ok(Found::Yes(Binary { path }));
        }
        let why = format!(
            "{} does not exist (build it with `CARGO_TARGET_DIR=target cargo build{} \
             --manifest-path benches/cqrs-es-reference/Cargo.toml`, or pass --reference-bin PATH)",
            path.display(),
            if release { " --release" } else { "" }
        );
        if args.smoke {
            Ok(Found::Skipped(why))
        } else {
            bail!("the cqrs-es reference is missing: {why}")
        }
    }

    /// Whether this `eventline` knows `command-api --append-batch` (group commit's setting).
    pub(super) async fn has_append_batch(&self) -> anyhow::Result<bool> {
        let help = Command::new(&self.path)
            .args(["command-api", "--help"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await
            .with_context(|| format!("run {} command-api --help", self.path.display()))?;
        Ok(String::from_utf8_lossy(&help.stdout).contains("--append-batch"))
    }

    /// `eventline command-api` on `store`, JWT on, listening on a port of its own choosing;
    /// returns once `/readyz` answers 200.
    pub(super) async fn command_api(
        &self,
        store: &str,
        extra: &[&str],
        secret: &str,
        args: &Args,
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(&self.path);
        // Its defaults and the flags below, not whatever this shell has set.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("EVENTLINE_") {
                command.env_remove(name);
            }
        }
        command
            .args(["command-api", "--store", store, "--listen", "127.0.0.1:0"])
            .args(["--store-pool-size", &pool_size(args).to_string()])
            .args(["--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE])
            // The `listen` field of its start-up line says which port it bound.
            .args(["--log-format", "json"])
            .args(extra)
            // The secret goes through the environment, so it never shows in a process list.
            .env("EVENTLINE_JWT_HS256_SECRET", secret)
            .stdout(Stdio::null());
        let what = format!("eventline command-api ({})", store_kind(store));
        let mut server = Server::start(command, what, Output::Stderr, listen_field).await?;
        server.ready().await?;
        Ok(server)
    }

    /// `cqrs-es-reference --serve 127.0.0.1:0`, which prints its address once it serves.
    pub(super) async fn serve(&self, args: &Args) -> anyhow::Result<Server> {
        let mut command = Command::new(&self.path);
        command
            .args(["--serve", "127.0.0.1:0"])
            .args(["--pool", &pool_size(args).to_string()]);
        let what = "cqrs-es reference".to_owned();
        Server::start(command, what, Output::Stdout, |line| {
            line.trim().parse().ok()
        })
        .await
    }
}

/// `given`, or `name` in the directory of this executable, and whether that is a release build.
fn beside_me(given: Option<&Path>, name: &str) -> anyhow::Result<(PathBuf, bool)> {
    let me = std::env::current_exe().context("find this executable")?;
    let dir = me
        .parent()
        .context("this executable has no directory")?
        .to_path_buf();
    let release = dir.ends_with("release");
    Ok((
        given.map_or_else(|| dir.join(name), Path::to_path_buf),
        release,
    ))
}

fn store_kind(url: &str) -> &str {
    url.split(':').next().unwrap_or("?")
}

/// The address in `eventline`'s JSON start-up log line (`"listen":"127.0.0.1:PORT"`).
fn listen_field(line: &str) -> Option<SocketAddr> {
    let line: serde_json::Value = serde_json::from_str(line).ok()?;
    line.get("listen")?.as_str()?.parse().ok()
}

/// Which output of a server says where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Stdout,
    Stderr,
}

/// A server in a child process, killed if dropped unstopped.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) what: String,
    child: Child,
    pub(super) base: String,
    /// The last lines it wrote, for the error when it fails.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Spawns `command` and waits until a line of its `output` yields an address.
    async fn start(
        mut command: Command,
        what: String,
        output: Output,
        address: fn(&str) -> Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        command.stdin(Stdio::null()).kill_on_drop(true);
        match output {
            Output::Stdout => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
            Output::Stderr => command.stderr(Stdio::piped()),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("start {what}: {:?}", command.as_std()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (found, bound) = oneshot::channel();
        let mut found = Some(found);
        for (stream, is_address_stream) in [
            (child.stdout.take().map(boxed), output == Output::Stdout),
            (child.stderr.take().map(boxed), output == Output::Stderr),
        ] {
            let Some(stream) = stream else { continue };
            let found = if is_address_stream {
                found.take()
            } else {
                None
            };
            tokio::spawn(watch(stream, Arc::clone(&tail), found, address));
        }
        let mut server = Server {
            what,
            child,
            base: String::new(),
            tail,
        };
        match tokio::time::timeout(START_TIMEOUT, bound).await {
            Ok(Ok(addr)) => {
                server.base = format!("http://{addr}");
                Ok(server)
            }
            Ok(Err(_)) => {
                let status = server.child.wait().await?;
                bail!(server.failure(&format!("exited ({status}) before it listened")))
            }
            Err(_) => bail!(server.failure(&format!(
                "did not say where it listens within {} s",
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Waits until `GET /readyz` answers 200.
    async fn ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answer = http.get(format!("{}/readyz", self.base)).send().await;
            if answer.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(self.failure(&format!("exited ({status}) before it was ready")));
            }
            if Instant::now() > deadline {
                bail!(self.failure(&format!(
                    "was not ready within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its peak resident set so far, in KiB (`VmHWM` in `/proc/PID/status`; Linux only).
    pub(super) fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// Stops it gracefully with SIGTERM and waits for it to exit; it must exit successfully.
    pub(super) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .with_context(|| format!("{} exited before it was stopped", self.what))?;
        // The `kill` command, as the workspace's tests signal processes (no unsafe code).
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .context("run kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {pid} ({}) failed: {sent}", self.what);
        }
        let exited: ExitStatus = match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(exited) => exited?,
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(self.failure(&format!(
                    "did not stop within {} s of SIGTERM",
                    STOP_TIMEOUT.as_secs()
                )));
            }
        };
        if !exited.success() {
            bail!(self.failure(&format!("exited with {exited} after SIGTERM")));
        }
        Ok(())
    }

    /// `what` went wrong with this server, with the last lines it wrote.
    fn failure(&self, what: &str) -> String {
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let mut message = format!("{} {what}", self.what);
        if !tail.is_empty() {
            message.push_str("; its last lines:");
            for line in tail {
                message.push_str("\n  ");
                message.push_str(&line);
            }
        }
        message
    }
}

fn boxed(stream: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(stream)
}

/// Reads `stream` to its end, keeping its last lines in `tail` and sending the first address
/// a line yields to `found`. Draining it also keeps the server from blocking on a full pipe.
async fn watch(
    stream: Box<dyn AsyncRead + Send + Unpin>,
    tail: Arc<Mutex<VecDeque<String>>>,
    mut found: Option<oneshot::Sender<SocketAddr>>,
    address: fn(&str) -> Option<SocketAddr>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(addr) = found.as_ref().and_then(|_| address(&line))
            && let Some(found) = found.take()
        {
            let _ = found.send(addr);
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
