"""The Raft metadata quorum, seen from clients: three `millrace broker`
processes with ``process.roles=broker,controller`` form one cluster.

- Losing one of three controllers (the quorum leader, killed with SIGKILL)
  changes nothing a client sees: topics are still created, acks=all writes
  with ``min.insync.replicas=2`` succeed, and everything acknowledged is read
  back; the node rejoins every ISR when it returns.
- Losing two stops metadata changes (CreateTopics fails with a retriable
  error) but not the surviving leader's partitions: it still serves what was
  committed and accepts acks=1 writes, which become readable once the others
  return, with nothing lost.
- With a tiny ``metadata.log.max.record.bytes.between.snapshots`` every node
  snapshots and purges its Raft log; the whole cluster restarts from its
  snapshots with every topic and config intact, and a node that was down
  while the others purged past it receives the leader's snapshot.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from clients import ck_consume, ck_produce, ck_watermarks, wait_until
from conftest import Broker, free_port, quorum_leader, strip_ansi

T = 30.0


class QuorumCluster:
    """Three combined broker+controller nodes on loopback."""

    def __init__(self, size: int = 3, overrides: dict[str, str] | None = None):
        self.client_ports = [free_port() for _ in range(size)]
        self.controller_ports = [free_port() for _ in range(size)]
        voters = ",".join(f"{n + 1}@127.0.0.1:{p}" for n, p in enumerate(self.controller_ports))
        self.nodes: list[Broker] = []
        for n in range(size):
            node = Broker({
                "node.id": str(n + 1),
                "process.roles": "broker,controller",
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{self.client_ports[n]},"
                             f"CONTROLLER://127.0.0.1:{self.controller_ports[n]}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                "broker.rack": f"az{n + 1}",
                "default.replication.factor": "3",
                "min.insync.replicas": "2",
                "offsets.topic.replication.factor": "3",
                "transaction.state.log.replication.factor": "3",
                "transaction.state.log.min.isr": "2",
                "broker.heartbeat.interval.ms": "1000",
                "broker.session.timeout.ms": "6000",
                "replica.lag.time.max.ms": "6000",
                **(overrides or {}),
            })
            node.port = self.client_ports[n]
            self.nodes.append(node)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.client_ports)

    def bootstrap_of(self, node_ids) -> str:
        return ",".join(f"127.0.0.1:{self.client_ports[n - 1]}" for n in node_ids)

    def node(self, node_id: int) -> Broker:
        return self.nodes[node_id - 1]

    def start(self):
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_started()
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        wait_until(lambda: len(admin.list_topics(timeout=5).brokers) == len(self.nodes),
                   timeout=60, what="every node registered")

    def quorum_leader(self) -> int:
        """The leader the newest 'leader elected' line of any live node names."""
        return quorum_leader(self.nodes)

    def dump(self) -> str:
        return "\n".join(f"--- node {i + 1} ---\n" + "\n".join(n.output().splitlines()[-80:])
                         for i, n in enumerate(self.nodes))

    def start_all(self):
        """Starts every stopped node at once: none of them serves before a
        majority of the voters is up, so starting them one by one would
        wait on each other."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(node.start) for node in self.nodes]:
                started.result()
        for node in self.nodes:
            node.wait_started()

    def cleanup(self):
        for node in self.nodes:
            node.cleanup()


@pytest.fixture
def cluster():
    c = QuorumCluster()
    try:
        c.start()
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.cleanup()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(admin: AdminClient, topic: str, partitions: int = 3, config: dict | None = None):
    fs = admin.create_topics([NewTopic(topic, partitions, 3, config=config or {})],
                             operation_timeout=T, request_timeout=T)
    fs[topic].result(timeout=T)


def partitions_of(admin: AdminClient, topic: str) -> dict:
    md = admin.list_topics(topic=topic, timeout=10)
    return {p: (pm.leader, sorted(pm.replicas), sorted(pm.isrs)) for p, pm in md.topics[topic].partitions.items()}


def fully_replicated(admin: AdminClient, topic: str, replicas: int = 3) -> bool:
    parts = partitions_of(admin, topic)
    return bool(parts) and all(len(isr) == replicas and leader >= 0 for leader, _, isr in parts.values())


def records(n: int, partitions: int, tag: str) -> list[dict]:
    return [dict(partition=i % partitions, key=None, value=f"{tag}-{i}".encode(), headers=[], timestamp=None)
            for i in range(n)]


def test_losing_the_quorum_leader_changes_nothing_a_client_sees(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    before = unique("q-before")
    create(admin, before)
    wait_until(lambda: fully_replicated(admin, before), what="topic fully replicated")
    first = records(300, 3, "first")
    ck_produce(cluster.bootstrap, before, first, **{"enable.idempotence": True})

    leader = cluster.quorum_leader()
    cluster.node(leader).kill()
    survivors = [n for n in (1, 2, 3) if n != leader]
    live = cluster.bootstrap_of(survivors)
    admin = AdminClient({"bootstrap.servers": live})

    # Metadata changes go on: a new controller is elected and serves CreateTopics.
    after = unique("q-after")
    create(admin, after)
    # The dead node is fenced: its leaderships move and it leaves the ISRs.
    for topic in (before, after):
        wait_until(lambda t=topic: all(l in survivors and len(isr) == 2
                                       for l, _, isr in partitions_of(admin, t).values()),
                   timeout=30, what=f"{topic} led by the survivors")
    # acks=all with min.insync.replicas=2 still succeeds on every partition.
    second = records(300, 3, "second")
    ck_produce(live, before, second, **{"enable.idempotence": True})
    ck_produce(live, after, records(30, 3, "new"), **{"enable.idempotence": True})

    got = ck_consume(live, before, [0, 1, 2])
    assert sorted(r["value"] for r in got) == sorted(r["value"] for r in first + second)

    # The node comes back, catches up and rejoins every ISR.
    cluster.node(leader).start()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for topic in (before, after):
        wait_until(lambda t=topic: fully_replicated(admin, t), timeout=60,
                   what=f"{topic} back in sync on 3 replicas")


def test_losing_two_controllers_stops_metadata_changes_but_not_the_surviving_leader(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = unique("q-two")
    # min.insync.replicas=1 on the topic: what is left of the cluster may
    # still accept acks=1 writes; the high watermark waits for the others.
    create(admin, topic, config={"min.insync.replicas": "1"})
    wait_until(lambda: fully_replicated(admin, topic), what="topic fully replicated")
    committed = records(90, 3, "committed")
    ck_produce(cluster.bootstrap, topic, committed)

    # Every partition's leader shows the writes committed (its high
    # watermark passed them) before the others are lost.
    wait_until(lambda: all(ck_watermarks(cluster.bootstrap, topic, p)[1] == 30 for p in range(3)),
               what="high watermarks at 30")
    survivor = partitions_of(admin, topic)[0][0]
    for n in (1, 2, 3):
        if n != survivor:
            cluster.node(n).kill()
    live = cluster.bootstrap_of([survivor])
    lonely = AdminClient({"bootstrap.servers": live})
    led = sorted(p for p, (leader, _, _) in partitions_of(lonely, topic).items() if leader == survivor)
    assert 0 in led, "the survivor still leads what it led"

    # No quorum: a metadata change cannot be made.
    fs = lonely.create_topics([NewTopic(unique("q-nope"), 1, 1)], operation_timeout=5, request_timeout=25)
    with pytest.raises(KafkaException) as refused:
        list(fs.values())[0].result(timeout=40)
    # As Kafka: the change times out (on the broker or in the client); the
    # client may retry it once a quorum is back.
    assert refused.value.args[0].code() in (KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT), refused.value

    # The surviving leader still serves what was committed on its partitions...
    got = ck_consume(live, topic, led)
    assert sorted(r["value"] for r in got) == sorted(r["value"] for r in committed if r["partition"] in led)
    # ... and accepts acks=1 writes to them.
    p = Producer({"bootstrap.servers": live, "acks": "1", "enable.idempotence": False})
    acked = []
    for i in range(30):
        p.produce(topic, partition=led[0], value=f"alone-{i}".encode(),
                  on_delivery=lambda e, m: acked.append(m.value()) if e is None else None)
    p.flush(T)
    assert len(acked) == 30

    # The others return: metadata changes work again and nothing is lost.
    for n in (1, 2, 3):
        if n != survivor:
            cluster.node(n).start()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    create(admin, unique("q-again"), partitions=1)
    wait_until(lambda: fully_replicated(admin, topic), timeout=60, what="back in sync")
    expected = set(acked) | {r["value"] for r in committed if r["partition"] == led[0]}
    # The high watermark passes the lone writes once the followers have them.
    wait_until(lambda: expected <= {r["value"] for r in ck_consume(cluster.bootstrap, topic, [led[0]])},
               timeout=60, what="acks=1 writes the lone leader accepted are kept and readable")


# ---- snapshots ----

SNAPSHOT_BYTES = 2048


@pytest.fixture
def snapshot_cluster():
    c = QuorumCluster(overrides={"metadata.log.max.record.bytes.between.snapshots": str(SNAPSHOT_BYTES)})
    try:
        c.start()
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.cleanup()


def quorum_dir(node: Broker) -> Path:
    """Where the node keeps its Raft log and snapshot (crates/quorum/src/lib.rs):
    ``<metadata.log.dir, else the first log dir>/millrace-quorum``."""
    return node.log_dir / "millrace-quorum"


def checked_json(line: str):
    """One checked line of the quorum's files: ``<crc32c hex> <JSON>``."""
    return json.loads(line.split(" ", 1)[1])


def purged_index(node: Broker) -> int | None:
    """The last Raft index purged from the node's log (its header line)."""
    with open(quorum_dir(node) / "raft.log") as log:
        purged = checked_json(log.readline())["Purged"]
    return None if purged is None else purged["index"]


def last_log_index(node: Broker) -> int | None:
    lines = (quorum_dir(node) / "raft.log").read_text().splitlines()
    entries = [checked_json(line)["Entry"] for line in lines[1:]]
    return entries[-1]["log_id"]["index"] if entries else purged_index(node)


def snapshot_index(node: Broker) -> int | None:
    path = quorum_dir(node) / "snapshot"
    if not path.exists():
        return None
    return checked_json(path.read_text())["meta"]["last_log_id"]["index"]


def retention_of(admin: AdminClient, topic: str) -> str:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res], request_timeout=T)[res].result(timeout=T)
    return configs["retention.ms"].value


def assert_serves(cluster: QuorumCluster, node_id: int, expected: dict[str, int], altered: dict[str, str]):
    """Node ``node_id`` alone answers Metadata and DescribeConfigs with every
    topic, its partition count and its altered retention."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_of([node_id])})

    def topics_visible():
        md = admin.list_topics(timeout=10)
        return all(t in md.topics and len(md.topics[t].partitions) == n for t, n in expected.items())

    wait_until(topics_visible, timeout=60, what=f"node {node_id} shows all {len(expected)} topics")
    md = admin.list_topics(timeout=10)
    assert {t: len(md.topics[t].partitions) for t in expected} == expected
    for topic, retention in altered.items():
        assert retention_of(admin, topic) == retention, f"{topic} on node {node_id}"


def test_the_quorum_restarts_from_snapshots_and_a_lagging_node_receives_one(snapshot_cluster):
    cluster = snapshot_cluster
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    expected: dict[str, int] = {}
    altered: dict[str, str] = {}
    for i in range(16):
        topic = unique(f"snap-{i}")
        create(admin, topic, partitions=1 + i % 3)
        expected[topic] = 1 + i % 3
        if i % 4 == 0:
            retention = str(3_600_000 + i)
            res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
                ConfigEntry("retention.ms", retention, incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
            altered[topic] = retention

    # Every node snapshots on its own and purges the log its snapshot covers.
    wait_until(lambda: all(snapshot_index(n) is not None and purged_index(n) is not None for n in cluster.nodes),
               timeout=60, what="a snapshot and a purged log on every node")

    # The whole cluster stops and comes back from its snapshots.
    for node in cluster.nodes:
        assert node.stop() == 0, node.output()
    cluster.start_all()
    for node_id in (1, 2, 3):
        assert_serves(cluster, node_id, expected, altered)
    produced = unique("snap-data")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    create(admin, produced, partitions=2)
    wait_until(lambda: fully_replicated(admin, produced), timeout=60, what="new topic fully replicated")
    data = records(40, 2, "after-restart")
    ck_produce(cluster.bootstrap, produced, data, acks="all")
    got = ck_consume(cluster.bootstrap, produced, [0, 1])
    assert sorted(r["value"] for r in got) == sorted(r["value"] for r in data)
    expected[produced] = 2

    # A follower stops; the others snapshot and purge past where it stopped.
    leader = cluster.quorum_leader()
    lagging = next(n for n in (1, 2, 3) if n != leader)
    down = cluster.node(lagging)
    assert down.stop() == 0, down.output()
    stopped_at = last_log_index(down)
    live = AdminClient({"bootstrap.servers": cluster.bootstrap_of([n for n in (1, 2, 3) if n != lagging])})
    for i in range(80):
        if purged_index(cluster.node(leader)) is not None and purged_index(cluster.node(leader)) > stopped_at:
            break
        topic = unique(f"while-down-{i}")
        fs = live.create_topics([NewTopic(topic, 1, 2)], operation_timeout=T, request_timeout=T)
        fs[topic].result(timeout=T)
        expected[topic] = 1
    assert purged_index(cluster.node(leader)) > stopped_at, "the leader did not purge past the stopped node"

    # It comes back behind the leader's log: only the snapshot can bring it up to date.
    down.start()
    assert_serves(cluster, lagging, expected, altered)
    assert "installed a metadata snapshot from the leader" in strip_ansi(down.output())
    assert snapshot_index(down) > stopped_at
