//! The security attributes of a container process, applied by the init
//! (or the exec'd process) to itself just before execve, and the runtime's
//! own protection from the processes it starts.

pub mod attrs;
pub mod capabilities;
pub mod seccomp;
pub mod selfexe;
