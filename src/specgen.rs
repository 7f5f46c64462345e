pub fn default_spec() -> oci_spec::runtime::Spec {
    Default::default()
}
pub fn rootless_spec() -> oci_spec::runtime::Spec {
    Default::default()
}
