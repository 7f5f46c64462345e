//! rcontain: an OCI container runtime library. The `rcontain` binary is a
//! thin clap layer over this crate; nothing here knows about the CLI.

pub mod image;
