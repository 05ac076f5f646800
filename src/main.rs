//! The `mark1` command. Exit codes (DESIGN §13.8): 0 ok, 1 failure, 2 usage,
//! 3 not found, 4 unauthorized, 5 unavailable.

/// mimalloc: the runtime allocates a message per hop from many threads, where glibc's
/// arena locks showed up as contention in profiles of `mark1 bench dispatch`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mark1::cli::main()
}
