use std::process::ExitCode;

use clap::Parser;
use eventline::app::{self, AppError, Embedded};
use eventline::cli::{Cli, Command};
use eventline::telemetry;
use tokio_util::sync::CancellationToken;

async fn run(command: Command, shutdown: CancellationToken) -> Result<(), AppError> {
    let services = match &command {
        Command::Embedded(args) => Embedded::start(args, shutdown).await?.services,
        Command::CommandApi(args) => app::command_api(args, shutdown).await?,
        Command::QueryApi(args) => app::query_api(args, shutdown).await?,
        Command::Project(args) => app::project(args, shutdown).await?,
        Command::Relay(args) => app::relay(args, shutdown).await?,
        Command::Replay(args) => return app::replay(args, shutdown).await,
        Command::Rollback(args) => return app::roll_back(args).await,
        Command::Processor(args) => app::processor(args, shutdown).await?,
        Command::Token(args) => {
            println!("{}", eventline::auth::mint(args)?);
            return Ok(());
        }
    };
    services.wait().await
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log);
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            eventline_http::shutdown_signal().await;
            tracing::info!("shutting down: finishing requests in flight and the current batch");
            shutdown.cancel();
        }
    });
    match run(cli.command, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let error = anyhow::Error::from(error);
            tracing::error!(error = format!("{error:#}"), "eventline stopped");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
