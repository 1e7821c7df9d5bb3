//! `eventline-operator`: reconciles `Projection`s while holding the leader Lease, serves
//! `/healthz`, `/readyz` and `/metrics`, and shuts down gracefully on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use eventline_operator::crd::Projection;
use eventline_operator::http::{HttpState, router};
use eventline_operator::leader::{LeaseConfig, run_as_leader};
use eventline_operator::reconcile::{self, Context};
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Kubernetes operator for Eventline projections.
#[derive(Parser, Debug)]
#[command(name = "eventline-operator", version, about)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "EVENTLINE_OPERATOR_LISTEN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    listen_addr: SocketAddr,
    /// Namespace whose Projections to reconcile; all namespaces when unset.
    #[arg(long, env = "EVENTLINE_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Hold a Lease before reconciling (keep on when running more than one replica).
    #[arg(long, env = "EVENTLINE_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "EVENTLINE_OPERATOR_LEASE_NAME",
        default_value = "eventline-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease; the client's default namespace (in a pod: its own) when unset.
    #[arg(long, env = "EVENTLINE_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds the Lease stays valid after its last renewal.
    #[arg(
        long,
        env = "EVENTLINE_OPERATOR_LEASE_DURATION_SECONDS",
        default_value_t = 15
    )]
    lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews the Lease.
    #[arg(
        long,
        env = "EVENTLINE_OPERATOR_LEASE_GRACE_SECONDS",
        default_value_t = 5
    )]
    lease_grace_seconds: u64,
    /// This replica's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "EVENTLINE_OPERATOR_IDENTITY")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, env = "EVENTLINE_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "EVENTLINE_OPERATOR_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("parsing --log")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    }
    .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        result = tokio::signal::ctrl_c() => {
            result.context("waiting for SIGINT")?;
            info!("SIGINT: shutting down");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args)?;
    let metrics =
        eventline_operator::metrics::install().context("installing the metrics recorder")?;

    let shutdown = CancellationToken::new();
    let signals = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = wait_for_signal().await {
                error!(error = %e, "signal handling failed: shutting down");
            }
            shutdown.cancel();
        })
    };

    let ready = Arc::new(AtomicBool::new(false));
    let reconciler_metrics = eventline_operator::metrics::Metrics::default();
    let listener = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("binding {}", args.listen_addr))?;
    info!(addr = %args.listen_addr, "serving /healthz, /readyz and /metrics");
    let server = {
        let app = router(HttpState {
            ready: ready.clone(),
            metrics,
            reconciler: reconciler_metrics.clone(),
        });
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };

    let client = kube::Client::try_default()
        .await
        .context("creating the Kubernetes client")?;
    let namespace = args.namespace.clone().filter(|ns| !ns.is_empty());
    let projections: Api<Projection> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    projections
        .list(&ListParams::default().limit(1))
        .await
        .context(
            "listing Projections: is the CRD installed? (kubectl apply -f crds/projection.yaml)",
        )?;
    ready.store(true, Ordering::Release);

    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("eventline-operator-{}", std::process::id()));
    let mut ctx = Context::new(
        client.clone(),
        Reporter {
            controller: "eventline-operator".to_owned(),
            instance: Some(identity.clone()),
        },
    );
    ctx.metrics = reconciler_metrics;
    let ctx = Arc::new(ctx);
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "watching Projections"
    );

    if args.leader_election {
        let config = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            identity,
            duration_seconds: args.lease_duration_seconds,
            grace_seconds: args.lease_grace_seconds,
        };
        run_as_leader(client.clone(), &config, shutdown.clone(), |stop| {
            reconcile::run(
                client.clone(),
                namespace.as_deref(),
                ctx.clone(),
                stop.cancelled_owned(),
            )
        })
        .await
        .context("leader election")?;
    } else {
        reconcile::run(
            client.clone(),
            namespace.as_deref(),
            ctx,
            shutdown.clone().cancelled_owned(),
        )
        .await;
    }

    shutdown.cancel();
    signals.abort();
    server
        .await
        .context("joining the HTTP server")?
        .context("serving HTTP")?;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_an_eventline_operator_env_var() {
        Args::command().debug_assert();
        let envs: Vec<String> = Args::command()
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .map(|a| {
                a.get_env()
                    .unwrap_or_else(|| panic!("--{} has no env var", a.get_id()))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert!(envs.len() >= 10);
        assert!(
            envs.iter().all(|e| e.starts_with("EVENTLINE_OPERATOR_")),
            "{envs:?}"
        );
        // Every variable the shipped Deployment sets is a flag of this binary.
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/operator.yaml"))
                .expect("manifest");
        for line in manifest.lines() {
            if let Some(name) = line.trim().strip_prefix("- name: EVENTLINE_OPERATOR_") {
                let name = format!("EVENTLINE_OPERATOR_{name}");
                assert!(
                    envs.contains(&name),
                    "deploy/operator.yaml sets {name}, which no flag reads"
                );
            }
        }
    }

    #[test]
    fn defaults_match_the_documentation() {
        let args = Args::try_parse_from(["eventline-operator"]).expect("defaults parse");
        assert_eq!(args.listen_addr, "0.0.0.0:8080".parse().expect("addr"));
        assert!(args.leader_election);
        assert_eq!(args.lease_name, "eventline-operator");
        assert_eq!(args.namespace, None);
        let args = Args::try_parse_from([
            "eventline-operator",
            "--leader-election",
            "false",
            "--log-format",
            "text",
        ])
        .expect("parse");
        assert!(!args.leader_election);
        assert!(matches!(args.log_format, LogFormat::Text));
    }
}
