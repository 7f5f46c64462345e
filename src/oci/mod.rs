//! The OCI runtime-spec model as rcontain reads and writes it: loading and
//! validating config.json, the default config (`spec`), the features
//! document, and how spec values are spelled back in messages.

pub mod features;
pub(crate) mod names;
pub mod spec;
pub mod specgen;
