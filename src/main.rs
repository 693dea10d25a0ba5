use clap::Parser;

// jemalloc: glibc malloc/free took 15 % of a page's CPU (perf on the render bench).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = reale::Config::parse();
    match reale::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("reale: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
