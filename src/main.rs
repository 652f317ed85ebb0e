use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = signet::cli::Cli::parse();
    let _log = cli.init_logging();
    match signet::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
