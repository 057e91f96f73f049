//! The `server.properties` of each broker, in Apache Kafka's own names so
//! that the file would start a Kafka broker as well: MSK's zone-dependent
//! defaults, then the cluster's MSK configuration revision, then what the
//! control plane owns (node id, rack, listeners, log dirs, KRaft quorum).

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

/// The KRaft properties of a combined broker+controller node whose quorum is
/// every broker of the cluster. The broker accepts these keys today
/// (`millrace-config` validates them as Kafka 3.7 does) and runs each node
/// standalone; the Raft quorum being built uses them as written.
pub fn kraft_quorum_properties(
    cluster: &ClusterSpec,
    broker: &BrokerSpec,
) -> Vec<(String, String)> {
    let voters = cluster
        .brokers
        .iter()
        .map(|b| format!("{}@{}:{}", b.node_id, b.host, b.ports.controller))
        .collect::<Vec<_>>()
        .join(",");
    let _ = broker;
    vec![
        ("process.roles".into(), "broker,controller".into()),
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

/// The listeners every broker of `cluster` opens: the enabled client kinds
/// the broker can serve, replication and controller.
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
    section("The cluster's MSK configuration", &cluster.properties);

    let kinds = opened_listeners(cluster);
    let listeners = |host: &str| {
        kinds
            .iter()
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
    ];
    owned.extend(kraft_quorum_properties(cluster, b));
    section("Owned by the control plane", &owned);
    out
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
        assert!(text.contains("default.replication.factor=2\n"));
        assert!(!text.contains("CLIENT_SECURE"), "TLS is not served yet");
        let entries = millrace_config::parse_properties(&text).expect("parses");
        let (config, _warnings) =
            millrace_config::BrokerConfig::from_entries(&entries).expect("valid broker config");
        assert_eq!(config.node_id(), 2);
        assert_eq!(config.broker_rack(), Some("use1-az2"));
    }
}
