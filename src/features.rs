pub fn features() -> serde_json::Value {
    serde_json::json!({})
}
