//! The start path: cloning the container's processes and everything they
//! do until execve. The runtime (`spawn`, or `exec` for a process joining a
//! running container) clones a child that runs `init`; the two talk over a
//! `channel`, and hand fds to each other with `fdpass`.

pub mod callerfds;
pub mod channel;
pub mod exec;
pub mod fdpass;
pub mod init;
pub mod spawn;
