//! What a control plane is started with: where it listens and keeps its
//! state, which region and account it pretends to be, the fake VPC subnets
//! clusters may be placed in, the broker binary it runs, and the time-based
//! waits (configurable so that tests run in seconds, not hours).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One fake VPC subnet and the availability zone it lies in. Brokers in the
/// subnet get the zone id as their `broker.rack`, as MSK does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetZone {
    /// The subnet id clients pass in `clientSubnets`.
    pub subnet_id: String,
    /// The availability-zone id, e.g. `use1-az1`.
    pub zone_id: String,
}

/// Durations of the waits the engine makes. MSK's real values (six hours
/// between storage scalings) would make tests impossible, so every one is a
/// setting.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How often the supervisor checks every broker of every cluster.
    pub health_check_interval: Duration,
    /// How long a broker may take to answer after it was (re)started before
    /// the operation fails.
    pub broker_ready_timeout: Duration,
    /// How long a broker gets to shut down cleanly after SIGTERM.
    pub broker_stop_timeout: Duration,
    /// Consecutive failed health checks before a live but unresponsive broker
    /// is replaced.
    pub unhealthy_checks_before_healing: u32,
    /// The minimum time between two storage scaling events (MSK: 6 hours).
    pub storage_scaling_cooldown: Duration,
    /// Pause between two brokers of a rolling restart, after the first one is
    /// healthy again.
    pub rolling_restart_pause: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            health_check_interval: Duration::from_secs(5),
            broker_ready_timeout: Duration::from_secs(120),
            broker_stop_timeout: Duration::from_secs(30),
            unhealthy_checks_before_healing: 3,
            storage_scaling_cooldown: Duration::from_secs(6 * 3600),
            rolling_restart_pause: Duration::from_secs(0),
        }
    }
}

/// Everything [`crate::run`] needs.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Address of the REST API (default `127.0.0.1:9876`; port 0 picks one).
    pub listen: SocketAddr,
    /// Directory holding `control-plane.sqlite` and every broker's data.
    pub data_dir: PathBuf,
    /// The region in ARNs and in the SigV4 credential scope.
    pub region: String,
    /// The 12-digit account id in ARNs.
    pub account: String,
    /// The subnets clusters may be created in, and their zones.
    pub subnets: Vec<SubnetZone>,
    /// The `millrace` binary the process provisioner runs brokers with.
    pub broker_binary: PathBuf,
    /// The host brokers listen on and advertise.
    pub broker_host: String,
    /// The ports brokers are given, six each (default 20000–32767: below
    /// Linux's ephemeral range).
    pub broker_ports: std::ops::RangeInclusive<u16>,
    /// Wait durations.
    pub timings: Timings,
}

impl ControlPlaneConfig {
    /// Defaults for `data_dir`: loopback port 9876, us-east-1, account
    /// 123456789012, three subnets in three zones, and the `millrace` binary
    /// next to the running executable.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ControlPlaneConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9876)),
            data_dir: data_dir.into(),
            region: "us-east-1".to_string(),
            account: "123456789012".to_string(),
            subnets: default_subnets("us-east-1"),
            broker_binary: default_broker_binary(),
            broker_host: "127.0.0.1".to_string(),
            broker_ports: 20000..=32767,
            timings: Timings::default(),
        }
    }

    /// Where the SQLite state lives.
    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("control-plane.sqlite")
    }

    /// The zone of `subnet_id`, if it is a known subnet.
    pub fn zone_of(&self, subnet_id: &str) -> Option<&str> {
        self.subnets
            .iter()
            .find(|s| s.subnet_id == subnet_id)
            .map(|s| s.zone_id.as_str())
    }
}

/// Six subnets over three zones of `region` (two per zone, so that tests can
/// also try two subnets in one zone): `subnet-0000000000000000{1..6}`, zones
/// `{abbrev}-az1..3` where the abbreviation is MSK's (`use1` for us-east-1).
pub fn default_subnets(region: &str) -> Vec<SubnetZone> {
    let abbrev = zone_prefix(region);
    (1..=6)
        .map(|i| SubnetZone {
            subnet_id: format!("subnet-{i:017}"),
            zone_id: format!("{abbrev}-az{}", (i - 1) % 3 + 1),
        })
        .collect()
}

/// AWS's zone-id prefix for a region: the area letters, then the first
/// letters of the direction words, then the number (`us-east-1` → `use1`,
/// `ap-southeast-2` → `apse2`).
fn zone_prefix(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    match parts.as_slice() {
        [area, direction, number] => {
            let dir: String = ["north", "south", "east", "west", "central"]
                .iter()
                .filter(|w| direction.contains(*w))
                .map(|w| &w[..1])
                .collect();
            format!("{area}{dir}{number}")
        }
        _ => region.replace('-', ""),
    }
}

/// `millrace` next to the current executable (where cargo puts both), or on
/// `PATH`.
fn default_broker_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("millrace")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("millrace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_prefixes() {
        assert_eq!(zone_prefix("us-east-1"), "use1");
        assert_eq!(zone_prefix("ap-southeast-2"), "apse2");
        assert_eq!(zone_prefix("eu-central-1"), "euc1");
        let s = default_subnets("us-east-1");
        assert_eq!(s[0].subnet_id, "subnet-00000000000000001");
        assert_eq!(s[0].zone_id, "use1-az1");
        assert_eq!(s[3].zone_id, "use1-az1");
        assert_eq!(s[5].zone_id, "use1-az3");
    }
}
