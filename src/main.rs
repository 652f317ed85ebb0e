use clap::Parser;

/// mimalloc: per-thread free lists suit the many small, short-lived allocations of a request
/// (see the benchmark section of the README for what it measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This runtime runs the background tasks, the audit writer's among them; the HTTP workers have
/// runtimes of their own. One worker thread: a second is only ever woken to take the writer's
/// task from the first, a context switch per commit for nothing.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
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
