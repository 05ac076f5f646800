//! The `mark1` command. Exit codes (DESIGN §13.8): 0 ok, 1 failure, 2 usage,
//! 3 not found, 4 unauthorized, 5 unavailable.

fn main() -> std::process::ExitCode {
    mark1::cli::main()
}
