//! `chorus`: one binary, many roles. Everything happens in [`chorus::cli`].

fn main() -> std::process::ExitCode {
    chorus::cli::process()
}
