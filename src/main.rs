//! `chorus`: one binary, many roles. Everything happens in [`chorus::cli`].

/// mimalloc rather than glibc's malloc: a checkout allocates and frees
/// many small buffers across threads (events, statements, NATS frames),
/// where glibc's arenas cost a tenth of the platform's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    chorus::cli::process()
}
