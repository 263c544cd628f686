//! `chorus`: one binary, many roles. Everything happens in [`chorus::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    chorus::cli::main().await
}
