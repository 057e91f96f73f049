"""Dedicated controllers (KRaft's isolated mode): three ``millrace broker``
processes with ``process.roles=controller`` form the metadata quorum, and
three with ``process.roles=broker`` join it as observers.

- Clients see only the brokers: Metadata lists brokers 1-3 and no controller
  node, and topics, acks=all writes and reads work as on a combined cluster.
- Killing the active controller (SIGKILL) changes nothing a client sees:
  another controller takes over, topics are still created, writes go on.
- A broker that dies is fenced by the (controller-only) active controller:
  it leaves the ISR and the Metadata response, and acks=all writes with
  ``min.insync.replicas=2`` go on with the two that are left.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from clients import ck_consume, ck_produce, wait_until
from conftest import Broker, free_port, quorum_leader

T = 30.0
CONTROLLER_IDS = [101, 102, 103]
BROKER_IDS = [1, 2, 3]


class IsolatedCluster:
    """Three controller-only nodes and three broker-only nodes on loopback."""

    def __init__(self):
        self.controller_ports = {n: free_port() for n in CONTROLLER_IDS}
        voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in self.controller_ports.items())
        common = {
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
        }
        self.nodes: dict[int, Broker] = {}
        for n, port in self.controller_ports.items():
            node = Broker({
                **common,
                "node.id": str(n),
                "process.roles": "controller",
                "listeners": f"CONTROLLER://127.0.0.1:{port}",
            })
            # A controller has no Kafka listener: start() waits for its
            # quorum listener instead.
            node.port = port
            self.nodes[n] = node
        for n in BROKER_IDS:
            node = Broker({
                **common,
                "node.id": str(n),
                "process.roles": "broker",
                "listeners": "PLAINTEXT://127.0.0.1:{port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "broker.rack": f"az{n}",
                "default.replication.factor": "3",
                "min.insync.replicas": "2",
                "offsets.topic.replication.factor": "3",
                "replica.lag.time.max.ms": "4000",
            })
            self.nodes[n] = node

    @property
    def bootstrap(self) -> str:
        return ",".join(self.nodes[n].bootstrap for n in BROKER_IDS if self.nodes[n].is_running())

    def start(self):
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_started()
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        wait_until(lambda: sorted(admin.list_topics(timeout=5).brokers) == BROKER_IDS,
                   timeout=60, what="every broker registered")

    def active_controller(self) -> int:
        """The quorum leader, which is the active controller."""
        return quorum_leader(self.nodes.values())

    def dump(self) -> str:
        return "\n".join(f"--- node {n} ---\n" + "\n".join(node.output().splitlines()[-60:])
                         for n, node in self.nodes.items())

    def cleanup(self):
        for node in self.nodes.values():
            node.cleanup()


@pytest.fixture
def cluster():
    c = IsolatedCluster()
    try:
        c.start()
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.cleanup()


def create_topic(bootstrap: str, name: str, partitions: int = 3):
    """Creates an RF=3 topic, retrying while the quorum elects a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + T

    def attempt():
        try:
            admin.create_topics([NewTopic(name, partitions, 3)], operation_timeout=10)[name].result(20)
            return True
        except KafkaException as e:
            if e.args[0].name() == "TOPIC_ALREADY_EXISTS":
                return True
            assert time.monotonic() < deadline, f"creating {name}: {e}"
            return False

    wait_until(attempt, timeout=T + 25, what=f"topic {name} created")


def write_and_read(bootstrap: str, topic: str, count: int):
    records = [{"key": f"k{i}".encode(), "value": f"{topic}-{i}".encode()} for i in range(count)]
    acked = ck_produce(bootstrap, topic, records, **{"acks": "all", "enable.idempotence": True})
    assert len(acked) == count
    got = ck_consume(bootstrap, topic, [0, 1, 2], timeout=T)
    assert sorted(r["value"] for r in got) == sorted(r["value"] for r in records)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_clients_see_only_brokers_and_the_cluster_works(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    md = admin.list_topics(timeout=10)
    assert sorted(md.brokers) == BROKER_IDS
    assert cluster.active_controller() in CONTROLLER_IDS
    topic = unique("isolated")
    create_topic(cluster.bootstrap, topic)
    md = admin.list_topics(topic, timeout=10)
    for p in md.topics[topic].partitions.values():
        assert sorted(p.replicas) == BROKER_IDS
        assert p.leader in BROKER_IDS
    write_and_read(cluster.bootstrap, topic, 300)


def test_losing_the_active_controller_changes_nothing_clients_see(cluster):
    before = unique("before")
    create_topic(cluster.bootstrap, before)
    write_and_read(cluster.bootstrap, before, 100)

    active = cluster.active_controller()
    cluster.nodes[active].kill()
    wait_until(lambda: cluster.active_controller() not in (active,), timeout=T,
               what="another controller elected")

    after = unique("after")
    create_topic(cluster.bootstrap, after)
    write_and_read(cluster.bootstrap, after, 100)
    # The first topic still takes acks=all writes and keeps what it had.
    records = [{"value": f"{before}-more-{i}".encode()} for i in range(50)]
    assert len(ck_produce(cluster.bootstrap, before, records, acks="all")) == 50
    got = ck_consume(cluster.bootstrap, before, [0, 1, 2], timeout=T)
    assert len(got) == 150


def test_the_controller_fences_a_dead_broker(cluster):
    topic = unique("fence")
    create_topic(cluster.bootstrap, topic)
    write_and_read(cluster.bootstrap, topic, 50)

    cluster.nodes[3].kill()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})

    def fenced():
        md = admin.list_topics(topic, timeout=5)
        parts = md.topics[topic].partitions.values()
        return sorted(md.brokers) == [1, 2] and all(3 not in p.isrs and p.leader in (1, 2) for p in parts)

    wait_until(fenced, timeout=T, what="broker 3 fenced and out of every ISR")
    records = [{"value": f"{topic}-after-{i}".encode()} for i in range(50)]
    assert len(ck_produce(cluster.bootstrap, topic, records, acks="all")) == 50
    got = ck_consume(cluster.bootstrap, topic, [0, 1, 2], timeout=T)
    assert len(got) == 100
