//! The `server.properties` of each broker, in Apache Kafka's own names so
//! that the file would start a Kafka broker as well: MSK's zone-dependent
//! defaults, the thread counts of the broker size, then the cluster's MSK
//! configuration revision, then what the
//! control plane owns (node id, rack, listeners, log dirs, the storage cap
//! from the EBS volume size, KRaft quorum).

use super::{BrokerSpec, ClusterSpec, ListenerKind};

/// Whether the broker binary serves listeners of this kind today. TLS and
/// SASL listeners arrive with the security crate; until then their ports are
/// reserved and listed in bootstrap strings, but not opened, so a client
/// asking for them fails to connect instead of talking plaintext.
pub fn broker_serves(kind: ListenerKind) -> bool {
    matches!(
        kind,
        ListenerKind::Plaintext | ListenerKind::Replication | ListenerKind::Controller
    )
}

/// The metadata quorum's voters: the lowest broker id of each zone, so one
/// KRaft controller per zone (MSK runs three). The set never changes over
/// the cluster's life: new brokers get higher ids, and a broker count
/// decrease removes the highest ids of each zone, never the last one. That
/// matters because the brokers derive the cluster id from the voters.
pub fn quorum_voters(cluster: &ClusterSpec) -> Vec<&BrokerSpec> {
    let mut voters: Vec<&BrokerSpec> = Vec::new();
    let mut sorted: Vec<&BrokerSpec> = cluster.brokers.iter().collect();
    sorted.sort_by_key(|b| b.node_id);
    for b in sorted {
        if !voters.iter().any(|v| v.zone_id == b.zone_id) {
            voters.push(b);
        }
    }
    voters
}

/// Whether broker `b` is one of the quorum's voters (a combined
/// broker+controller node); the others are broker-only nodes that follow
/// the quorum.
pub fn is_voter(cluster: &ClusterSpec, b: &BrokerSpec) -> bool {
    quorum_voters(cluster)
        .iter()
        .any(|v| v.node_id == b.node_id)
}

/// The KRaft properties of broker `broker`: `process.roles` (combined on
/// voters, broker-only elsewhere), the voters, and the controller listener
/// name, as Kafka 3.7 expects them.
pub fn kraft_quorum_properties(
    cluster: &ClusterSpec,
    broker: &BrokerSpec,
) -> Vec<(String, String)> {
    let voters = quorum_voters(cluster)
        .iter()
        .map(|b| format!("{}@{}:{}", b.node_id, b.host, b.ports.controller))
        .collect::<Vec<_>>()
        .join(",");
    let roles = if is_voter(cluster, broker) {
        "broker,controller"
    } else {
        "broker"
    };
    vec![
        ("process.roles".into(), roles.into()),
        ("controller.quorum.voters".into(), voters),
        (
            "controller.listener.names".into(),
            ListenerKind::Controller.listener_name().into(),
        ),
    ]
}

/// MSK's defaults that depend on the number of zones (MSK Developer Guide,
/// "Default configuration"): three replicas and two in sync with three
/// zones, two and one with two zones, one and one with a single zone.
fn zone_defaults(zone_count: usize) -> Vec<(String, String)> {
    let (rf, min_isr) = match zone_count {
        0 | 1 => (1, 1),
        2 => (2, 1),
        _ => (3, 2),
    };
    vec![
        ("default.replication.factor".into(), rf.to_string()),
        ("min.insync.replicas".into(), min_isr.to_string()),
        ("offsets.topic.replication.factor".into(), rf.to_string()),
        (
            "transaction.state.log.replication.factor".into(),
            rf.to_string(),
        ),
        ("transaction.state.log.min.isr".into(), min_isr.to_string()),
    ]
}

/// What the broker size sets (MSK Developer Guide, "Default configuration"
/// and "Optimize cluster throughput"): `num.io.threads` = max(8, vCPUs),
/// `num.network.threads` = max(5, vCPUs / 2), `num.replica.fetchers` =
/// max(2, vCPUs / 4). The cluster's MSK configuration may override them.
pub fn size_profile(instance_type: &str) -> Vec<(String, String)> {
    let vcpus = crate::clusters::validation::INSTANCE_TYPES
        .iter()
        .find(|t| t.name == instance_type)
        .map_or(2, |t| t.vcpus);
    vec![
        ("num.io.threads".into(), vcpus.max(8).to_string()),
        ("num.network.threads".into(), (vcpus / 2).max(5).to_string()),
        (
            "num.replica.fetchers".into(),
            (vcpus / 4).max(2).to_string(),
        ),
    ]
}

/// The listeners the brokers of `cluster` open: the enabled client kinds
/// the broker can serve, replication, and controller (on the quorum's
/// voters only).
pub fn opened_listeners(cluster: &ClusterSpec) -> Vec<ListenerKind> {
    let mut kinds: Vec<ListenerKind> = cluster
        .client_listeners
        .iter()
        .copied()
        .filter(|k| broker_serves(*k))
        .collect();
    kinds.push(ListenerKind::Replication);
    kinds.push(ListenerKind::Controller);
    kinds
}

/// The complete `server.properties` text of broker `b` of `cluster`.
pub fn render_server_properties(cluster: &ClusterSpec, b: &BrokerSpec) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Written by the Millrace control plane: cluster {}, broker {}.\n# Kafka version {}, broker size {}. Regenerated on every (re)start.\n",
        cluster.cluster_arn, b.node_id, cluster.kafka_version, cluster.instance_type
    ));
    let mut section = |title: &str, entries: &[(String, String)]| {
        out.push_str(&format!("\n# {title}\n"));
        for (k, v) in entries {
            out.push_str(&format!("{k}={}\n", escape_value(v)));
        }
    };
    section(
        "MSK defaults for this zone count",
        &zone_defaults(cluster.zone_count),
    );
    section(
        &format!("Broker size {}", cluster.instance_type),
        &size_profile(&cluster.instance_type),
    );
    section("The cluster's MSK configuration", &cluster.properties);

    let kinds = opened_listeners(cluster);
    // Broker-only nodes don't listen as controllers (Kafka refuses it), but
    // map the controller listener's protocol to reach the voters.
    let voter = is_voter(cluster, b);
    let listeners = |host: &str| {
        kinds
            .iter()
            .filter(|k| voter || **k != ListenerKind::Controller)
            .map(|k| format!("{}://{host}:{}", k.listener_name(), b.ports.port(*k)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let advertised = kinds
        .iter()
        .filter(|k| **k != ListenerKind::Controller)
        .map(|k| format!("{}://{}:{}", k.listener_name(), b.host, b.ports.port(*k)))
        .collect::<Vec<_>>()
        .join(",");
    let protocol_map = kinds
        .iter()
        .map(|k| format!("{}:{}", k.listener_name(), k.security_protocol()))
        .collect::<Vec<_>>()
        .join(",");
    let mut owned = vec![
        ("node.id".to_string(), b.node_id.to_string()),
        ("broker.rack".to_string(), b.zone_id.clone()),
        ("listeners".to_string(), listeners(&b.host)),
        ("advertised.listeners".to_string(), advertised),
        ("listener.security.protocol.map".to_string(), protocol_map),
        (
            "inter.broker.listener.name".to_string(),
            ListenerKind::Replication.listener_name().to_string(),
        ),
        (
            "log.dirs".to_string(),
            b.data_dir.join("kafka-logs").display().to_string(),
        ),
        (
            "millrace.log.dirs.max.bytes".to_string(),
            storage_cap_bytes(cluster.volume_size_gib).to_string(),
        ),
    ];
    owned.extend(kraft_quorum_properties(cluster, b));
    section("Owned by the control plane", &owned);
    out
}

/// The broker's storage cap for an EBS volume of `gib` GiB: the whole
/// volume holds log segments, as MSK's does.
pub fn storage_cap_bytes(gib: i64) -> i64 {
    gib.max(1).saturating_mul(1 << 30)
}

/// Escapes what `java.util.Properties` would otherwise read differently
/// (backslashes, and leading spaces).
fn escape_value(v: &str) -> String {
    let escaped = v.replace('\\', "\\\\");
    match escaped.strip_prefix(' ') {
        Some(rest) => format!("\\ {rest}"),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn broker_size_sets_thread_counts() {
        let get = |t: &str| super::size_profile(t);
        let m5_4xl = get("kafka.m5.4xlarge");
        assert_eq!(m5_4xl[0], ("num.io.threads".into(), "16".into()));
        assert_eq!(m5_4xl[1], ("num.network.threads".into(), "8".into()));
        assert_eq!(m5_4xl[2], ("num.replica.fetchers".into(), "4".into()));
        let m7g_16xl = get("kafka.m7g.16xlarge");
        assert_eq!(m7g_16xl[0].1, "64");
        assert_eq!(m7g_16xl[1].1, "32");
        assert_eq!(m7g_16xl[2].1, "16");
        let t3 = get("kafka.t3.small");
        assert_eq!(
            (t3[0].1.as_str(), t3[1].1.as_str(), t3[2].1.as_str()),
            ("8", "5", "2")
        );
    }

    use super::*;
    use crate::provisioner::BrokerPorts;

    fn spec() -> ClusterSpec {
        let broker = |id: i32, base: u16| BrokerSpec {
            node_id: id,
            zone_id: format!("use1-az{id}"),
            host: "127.0.0.1".into(),
            ports: BrokerPorts {
                plaintext: base,
                tls: base + 1,
                sasl_scram: base + 2,
                sasl_iam: base + 3,
                replication: base + 4,
                controller: base + 5,
            },
            data_dir: format!("/d/b-{id}").into(),
        };
        ClusterSpec {
            cluster_arn: "arn".into(),
            cluster_id: "id-1".into(),
            cluster_dir: "/d".into(),
            kafka_version: "3.7.x.kraft".into(),
            instance_type: "kafka.m5.large".into(),
            zone_count: 2,
            client_listeners: vec![ListenerKind::Plaintext, ListenerKind::Tls],
            properties: vec![("auto.create.topics.enable".into(), "true".into())],
            volume_size_gib: 100,
            brokers: vec![broker(1, 10000), broker(2, 20000)],
        }
    }

    #[test]
    fn renders_a_config_the_broker_accepts() {
        let s = spec();
        let text = render_server_properties(&s, &s.brokers[1]);
        assert!(text.contains("node.id=2\n"));
        assert!(text.contains("broker.rack=use1-az2\n"));
        assert!(text.contains(
            "listeners=CLIENT://127.0.0.1:20000,REPLICATION://127.0.0.1:20004,CONTROLLER://127.0.0.1:20005\n"
        ));
        assert!(text.contains("controller.quorum.voters=1@127.0.0.1:10005,2@127.0.0.1:20005\n"));
        assert!(text.contains("process.roles=broker,controller\n"));
        assert!(text.contains("default.replication.factor=2\n"));
        assert!(text.contains("num.io.threads=8\nnum.network.threads=5\nnum.replica.fetchers=2\n"));
        assert!(!text.contains("CLIENT_SECURE"), "TLS is not served yet");
        assert!(
            text.contains("millrace.log.dirs.max.bytes=107374182400\n"),
            "100 GiB of EBS is the broker's storage cap"
        );
        let entries = millrace_config::parse_properties(&text).expect("parses");
        let (config, _warnings) =
            millrace_config::BrokerConfig::from_entries(&entries).expect("valid broker config");
        assert_eq!(config.node_id(), 2);
        assert_eq!(config.broker_rack(), Some("use1-az2"));
        assert_eq!(config.log_dirs_max_bytes(), Some(100 << 30));
    }

    #[test]
    fn voters_are_one_broker_per_zone_and_stay_so() {
        let mut s = spec();
        let mut third = s.brokers[0].clone();
        third.node_id = 3;
        third.zone_id = "use1-az1".into();
        third.ports.controller = 30005;
        third.ports.plaintext = 30000;
        third.ports.replication = 30004;
        s.brokers.push(third);
        let ids: Vec<i32> = quorum_voters(&s).iter().map(|b| b.node_id).collect();
        assert_eq!(ids, vec![1, 2], "the lowest id of each zone");
        let text = render_server_properties(&s, &s.brokers[2]);
        assert!(text.contains("process.roles=broker\n"), "{text}");
        assert!(text.contains("controller.quorum.voters=1@127.0.0.1:10005,2@127.0.0.1:20005\n"));
        assert!(!text.contains("CONTROLLER://127.0.0.1:30005"), "{text}");
        let entries = millrace_config::parse_properties(&text).expect("parses");
        millrace_config::BrokerConfig::from_entries(&entries).expect("a valid broker-only config");
    }
}
