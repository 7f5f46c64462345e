// PLACEHOLDER (uncommitted)
use anyhow::Result;
pub fn set_rlimits(_r: &[oci_spec::runtime::PosixRlimit]) -> Result<()> {
    Ok(())
}
pub fn set_no_new_privs() -> Result<()> {
    Ok(())
}
pub fn set_personality(_p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    Ok(())
}
pub fn set_io_priority(_p: &oci_spec::runtime::LinuxIOPriority) -> Result<()> {
    Ok(())
}
pub fn set_scheduler(_p: &oci_spec::runtime::Scheduler) -> Result<()> {
    Ok(())
}
pub fn set_identity(
    _u: &oci_spec::runtime::User,
    _c: Option<&crate::capabilities::CapSets>,
) -> Result<()> {
    Ok(())
}
