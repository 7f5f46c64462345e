//! How spec values are spelled in config.json, for error messages that
//! quote the user's own words.

/// The config.json spelling of a serde enum value such as
/// `LinuxSeccompAction::ScmpActKill` ("SCMP_ACT_KILL").
pub(crate) fn json_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_string(),
    }
}
