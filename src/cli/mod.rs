//! clap front end: one module per subcommand.
pub mod unpack;
