//! The `rcontain` command: parses runc-compatible arguments and calls the
//! library. Nothing below `cli` knows about clap.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
