//! The `rcontain` command: parses runc-compatible arguments and calls the
//! library. Nothing below `cli` knows about clap.
//!
//! The entry point is libc's `main`, not std's wrapper around it: before
//! `main` that wrapper finds the main thread's stack guard (glibc parses
//! /proc/self/maps for it) and sets up an alternate signal stack, at
//! every start, for a nicer message on a stack overflow. What it does
//! that the runtime needs, `init_process` does. Unit tests keep the test
//! harness's own `main`.
#![cfg_attr(not(test), no_main)]

mod cli;

#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(_argc: i32, _argv: *const *const std::ffi::c_char) -> i32 {
    rcontain::sys::init_process();
    std::process::exit(cli::main());
}
