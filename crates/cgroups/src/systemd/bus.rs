//! systemd's manager over D-Bus (zbus, blocking API): the system's on
//! the system bus, or (rootless) the user's own instance on the user's
//! bus. Start, change and stop a container's transient scope, waiting for
//! each job as runc does. zbus runs a helper thread once connected: every
//! fork of the container's processes happens before a connection is made.

use super::{Property, Value};
use anyhow::{anyhow, bail, Context, Result};
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{self, OwnedObjectPath};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a start or stop job may take.
const JOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connection to systemd's manager.
pub struct Bus {
    // kept alive as long as the proxy uses it
    _conn: Connection,
    manager: Proxy<'static>,
}

fn variant(v: &Value) -> Result<zvariant::Value<'static>> {
    use zvariant::Value as V;
    Ok(match v {
        Value::Str(s) => V::from(s.clone()),
        Value::Bool(b) => V::from(*b),
        Value::U64(n) => V::from(*n),
        Value::U32s(a) => V::from(a.clone()),
        Value::Bytes(a) => V::from(a.clone()),
        Value::DeviceAllow(a) => V::from(a.clone()),
        Value::Byte(n) => V::from(*n),
        Value::I16(n) => V::from(*n),
        Value::U16(n) => V::from(*n),
        Value::I32(n) => V::from(*n),
        Value::U32(n) => V::from(*n),
        Value::I64(n) => V::from(*n),
        Value::Double(n) => V::from(*n),
        Value::ObjectPath(s) => V::from(
            zvariant::ObjectPath::try_from(s.clone())
                .map_err(|e| anyhow!("{s:?} is not a D-Bus object path: {e}"))?,
        ),
        Value::Signature(s) => V::from(
            zvariant::Signature::try_from(s.as_str())
                .map_err(|e| anyhow!("{s:?} is not a D-Bus signature: {e}"))?,
        ),
        Value::Array(elem, items) => {
            let sig = zvariant::Signature::try_from(elem.as_str())
                .map_err(|e| anyhow!("array of {elem:?}: {e}"))?;
            let mut a = zvariant::Array::new(&sig);
            for item in items {
                a.append(variant(item)?)
                    .map_err(|e| anyhow!("array of {elem:?}: {e}"))?;
            }
            V::Array(a)
        }
    })
}

/// The properties as D-Bus wants them: the named ones, then `extra`.
fn props<'a>(
    p: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> Result<Vec<(&'a str, zvariant::Value<'static>)>> {
    p.into_iter()
        .map(|(k, v)| Ok((k, variant(v).with_context(|| format!("property {k}"))?)))
        .collect()
}

/// The user's bus and the uid to authenticate as (EXTERNAL): the
/// address as runc finds it (super::user_bus_address), and the user's
/// uid on the host, which the bus sees on the socket; under a user
/// namespace (rootless podman runs the runtime as its root) that is the
/// outer id of our euid.
fn user_bus() -> Result<(String, u32)> {
    let address = super::user_bus_address(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS"),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )?;
    Ok((
        address,
        rcontain_sys::outer_uid(nix::unistd::geteuid().as_raw()),
    ))
}

/// The D-Bus error name systemd answered with, if it did.
fn error_name(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    error_name(e).is_some_and(|n| n.ends_with(".NoSuchUnit") || n.ends_with(".LoadFailed"))
}

impl Bus {
    /// Connect to systemd: the system's, or with `user` the user's own
    /// instance on the user's bus (see `user_bus`); a host without systemd
    /// or without that bus gets one line saying so.
    pub fn connect(user: bool) -> Result<Bus> {
        if !super::booted() {
            bail!("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system), so it cannot own the container's cgroup");
        }
        let conn = if user {
            let (address, uid) = user_bus()?;
            zbus::blocking::connection::Builder::address(address.as_str())
                .and_then(|b| {
                    b.auth_mechanism(zbus::AuthMechanism::External)
                        .user_id(uid)
                        .build()
                })
                .map_err(|e| {
                    anyhow!("--systemd-cgroup: connecting to the user's D-Bus at {address} (as uid {uid}): {e}")
                })?
        } else {
            Connection::system()
                .map_err(|e| anyhow!("--systemd-cgroup: connecting to the system D-Bus: {e}"))?
        };
        let manager = Proxy::new(&conn, DEST, PATH, MANAGER)
            .map_err(|e| anyhow!("--systemd-cgroup: systemd's manager on D-Bus: {e}"))?;
        Ok(Bus {
            _conn: conn,
            manager,
        })
    }

    /// systemd's version number ("252.19-1~deb12u1" is 252).
    pub fn version(&self) -> Result<u32> {
        let v: String = self
            .manager
            .get_property("Version")
            .map_err(|e| anyhow!("reading systemd's Version: {e}"))?;
        let digits: String = v
            .trim_start_matches(['"', 'v'])
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits
            .parse()
            .map_err(|_| anyhow!("systemd's Version {v:?} is not a number"))
    }

    /// Runs `call` (which starts a job and returns its path) and waits
    /// until systemd reports that job removed; its result must be "done".
    fn job(
        &self,
        what: &str,
        call: impl FnOnce() -> zbus::Result<OwnedObjectPath>,
    ) -> Result<std::result::Result<(), String>, zbus::Error> {
        // Signals are sent only to subscribed clients; subscribing twice is harmless.
        let _: zbus::Result<()> = self.manager.call("Subscribe", &());
        // Listen before the call: the job may end before it returns.
        let mut removed = self.manager.receive_signal("JobRemoved")?;
        let job = call()?;
        // The wait runs beside us so that a systemd that never ends the job
        // (hung, or busy reloading) cannot hang the runtime: runc gives up
        // after the same time.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for msg in &mut removed {
                let Ok((_, path, _, result)) = msg
                    .body()
                    .deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                if path == job {
                    let _ = tx.send(result);
                    return;
                }
            }
        });
        match rx.recv_timeout(JOB_TIMEOUT) {
            Ok(result) if result == "done" => Ok(Ok(())),
            Ok(result) => Ok(Err(format!("{what}: systemd's job ended with {result:?}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(zbus::Error::Failure(format!(
                "{what}: systemd's job did not end within {} s",
                JOB_TIMEOUT.as_secs()
            ))),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(zbus::Error::Failure(
                format!("{what}: the bus closed before systemd's job ended"),
            )),
        }
    }

    /// StartTransientUnit(name, "replace", props then extra) and wait for
    /// it (systemd applies them in order: an extra one overrides). A
    /// leftover failed unit of that name is reset and the start retried
    /// once, as runc does.
    pub fn start_unit(&self, name: &str, p: &[Property], extra: &[(String, Value)]) -> Result<()> {
        let aux: Vec<(&str, Vec<(&str, zvariant::Value)>)> = Vec::new();
        let all = p
            .iter()
            .map(|(k, v)| (*k, v))
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v)));
        let body = (name, "replace", props(all)?, aux);
        let what = format!("starting systemd unit {name}");
        let mut retried = false;
        loop {
            let r = self.job(&what, || self.manager.call("StartTransientUnit", &body));
            match r {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    let _ = self.reset_failed(name);
                    bail!("{e}");
                }
                Err(e)
                    if !retried && error_name(&e).is_some_and(|n| n.ends_with(".UnitExists")) =>
                {
                    let _ = self.reset_failed(name);
                    retried = true;
                }
                Err(e) => bail!("{what}: {e}"),
            }
        }
    }

    /// SetUnitProperties(name, runtime=true, props).
    pub fn set_properties(&self, name: &str, p: &[Property]) -> Result<()> {
        if p.is_empty() {
            return Ok(());
        }
        self.manager
            .call::<_, _, ()>(
                "SetUnitProperties",
                &(name, true, props(p.iter().map(|(k, v)| (*k, v)))?),
            )
            .with_context(|| format!("setting the properties of systemd unit {name}"))
    }

    /// StopUnit and wait, then ResetFailedUnit so that nothing of the unit
    /// stays in systemd. A unit that is already gone is fine.
    pub fn stop_unit(&self, name: &str) -> Result<()> {
        let what = format!("stopping systemd unit {name}");
        let r = self.job(&what, || self.manager.call("StopUnit", &(name, "replace")));
        let _ = self.reset_failed(name);
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => bail!("{e}"),
            Err(e) if is_no_such_unit(&e) => Ok(()),
            Err(e) => bail!("{what}: {e}"),
        }
    }

    fn reset_failed(&self, name: &str) -> zbus::Result<()> {
        self.manager.call("ResetFailedUnit", &(name,))
    }
}
