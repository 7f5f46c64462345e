//! Minimal CLI wiring for the `image` branch; the lead re-wires on merge.
mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rcontain", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Unpack(cli::unpack::UnpackArgs),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Unpack(a) => cli::unpack::run(a),
    };
    if let Err(e) = r {
        eprintln!("rcontain: {e:#}");
        std::process::exit(1);
    }
}
