use clap::Parser;

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
