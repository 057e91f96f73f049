"""Consumer groups with confluent-kafka and kafka-python (issue 3 acceptance).

Groups of 1 to 4 members join and leave while a producer writes, with the
range, roundrobin and cooperative-sticky assignors: every produced record is
consumed (at least once: duplicates across rebalances are allowed, nothing is
missing). kafka-python consumers commit and a new member resumes at the
committed offsets. Static members rejoin without a rebalance. The admin
APIs list, describe and delete groups and list, alter and delete their
offsets. A KIP-848 (``group.protocol=consumer``) group of two consumes.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    TopicPartition,
    libversion,
)

from clients import CLIENT_TIMEOUT_S, ck_admin, ck_conf, ck_create_topics, ck_produce, kp_admin, wait_until

T = CLIENT_TIMEOUT_S
STABLE_TIMEOUT_S = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(broker):
    return ck_admin(broker.bootstrap)


class Member:
    """A group member polling on its own thread (confluent-kafka or kafka-python)."""

    def __init__(self, kind: str, name: str, bootstrap: str, group: str, topic: str, seen: dict,
                 lock: threading.Lock, **conf):
        self.kind, self.name = kind, name
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.seen, self.lock, self.conf = seen, lock, conf
        self.assigned: set[int] = set()
        self.assign_calls = 0
        self.errors: list = []
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)
        self.thread.start()

    def _record(self, partition: int, value: bytes):
        with self.lock:
            self.seen.setdefault(value, []).append(self.name)

    def _run(self):
        try:
            if self.kind == "ck":
                self._run_ck()
            else:
                self._run_kp()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(exc))
        finally:
            self.closed.set()

    def _run_ck(self):
        conf = ck_conf(self.bootstrap, **{
            "group.id": self.group,
            "client.id": f"member-{self.name}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        })
        if self.conf.get("group.protocol") != "consumer":
            conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 1000})
        conf.update(self.conf)
        c = Consumer(conf)
        # Cooperative assignors and KIP-848 hand out increments.
        incremental = (conf.get("partition.assignment.strategy") == "cooperative-sticky"
                       or conf.get("group.protocol") == "consumer")

        def on_assign(consumer, partitions):
            self.assign_calls += 1
            if not incremental:
                self.assigned = set()
            self.assigned |= {p.partition for p in partitions}

        def on_revoke(consumer, partitions):
            if incremental:
                self.assigned -= {p.partition for p in partitions}
            else:
                self.assigned = set()

        def on_lost(consumer, partitions):
            on_revoke(consumer, partitions)

        try:
            c.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
            while not self.stop.is_set():
                m = c.poll(0.1)
                if m is None:
                    continue
                if m.error():
                    self.errors.append(str(m.error()))
                    continue
                self._record(m.partition(), m.value())
        finally:
            c.close()

    def _run_kp(self):
        from kafka import KafkaConsumer

        c = KafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            client_id=f"member-{self.name}",
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            auto_commit_interval_ms=500,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            request_timeout_ms=20000,
            **self.conf,
        )
        try:
            while not self.stop.is_set():
                for tp, recs in c.poll(timeout_ms=100).items():
                    for r in recs:
                        self._record(r.partition, r.value)
                self.assigned = {tp.partition for tp in c.assignment()}
        finally:
            c.close()

    def leave(self, timeout: float = T):
        self.stop.set()
        assert self.closed.wait(timeout), f"member {self.name} did not close within {timeout}s"
        self.thread.join(timeout)


def wait_stable(members: list[Member], partitions: int, timeout: float = STABLE_TIMEOUT_S):
    def split():
        sets = [set(m.assigned) for m in members]
        if any(not s for s in sets):
            return False
        union = set().union(*sets)
        return union == set(range(partitions)) and sum(len(s) for s in sets) == partitions

    wait_until(split, timeout=timeout,
               what=f"{len(members)} members to split {partitions} partitions: "
                    f"{[(m.name, sorted(m.assigned), m.errors) for m in members]}")


def produce_paced(bootstrap: str, topic: str, partitions: int, prefix: str, count: int, per_tick: int,
                  tick: float) -> threading.Thread:
    """Produces ``count`` values ``{prefix}-{i}`` (record i to partition i % partitions) on a thread."""
    result: dict = {}

    def run():
        try:
            values = [f"{prefix}-{i:06}".encode() for i in range(count)]
            for start in range(0, count, per_tick):
                chunk = [dict(partition=i % partitions, key=None, value=values[i], headers=[], timestamp=None)
                         for i in range(start, min(start + per_tick, count))]
                ck_produce(bootstrap, topic, chunk)
                time.sleep(tick)
            result["values"] = values
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.result = result
    t.start()
    return t


def join_producer(t: threading.Thread) -> list[bytes]:
    t.join(120)
    assert not t.is_alive(), "producer thread did not finish"
    assert "error" not in t.result, f"producer failed: {t.result['error']!r}"
    return t.result["values"]


CHURN_CASES = [
    ("ck", {"partition.assignment.strategy": "range"}),
    ("ck", {"partition.assignment.strategy": "roundrobin"}),
    ("ck", {"partition.assignment.strategy": "cooperative-sticky"}),
    ("kp", "range"),
    ("kp", "roundrobin"),
]


def kp_assignor(name: str) -> dict:
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    return {"partition_assignment_strategy": [{"range": RangePartitionAssignor,
                                               "roundrobin": RoundRobinPartitionAssignor}[name]]}


@pytest.mark.parametrize("kind,strategy", CHURN_CASES,
                         ids=["confluent-range", "confluent-roundrobin", "confluent-cooperative-sticky",
                              "kafka-python-range", "kafka-python-roundrobin"])
def test_members_join_and_leave_while_producing(broker, admin, kind, strategy):
    partitions = 6
    topic, group = unique("churn"), unique("churn-group")
    ck_create_topics(admin, {topic: partitions})
    conf = strategy if kind == "ck" else kp_assignor(strategy)
    seen: dict = {}
    lock = threading.Lock()

    def member(name):
        return Member(kind, name, broker.bootstrap, group, topic, seen, lock, **conf)

    m1 = member("m1")
    wait_stable([m1], partitions)
    producer = produce_paced(broker.bootstrap, topic, partitions, f"churn-{kind}", 1500, 50, 0.1)
    m2, m3 = member("m2"), member("m3")
    wait_stable([m1, m2, m3], partitions)
    m4 = member("m4")
    wait_stable([m1, m2, m3, m4], partitions)
    m2.leave()
    wait_stable([m1, m3, m4], partitions)
    m3.leave()
    wait_stable([m1, m4], partitions)
    m5 = member("m5")
    wait_stable([m1, m4, m5], partitions)
    values = join_producer(producer)
    live = [m1, m4, m5]
    try:
        wait_until(lambda: all(v in seen for v in values), timeout=90,
                   what=f"all {len(values)} records consumed ({len(seen)} distinct so far)")
    finally:
        for m in live:
            m.leave()
    assert set(seen) == set(values), (
        f"missing {sorted(set(values) - set(seen))[:10]}, unexpected {sorted(set(seen) - set(values))[:10]}")
    errors = [(m.name, m.errors) for m in (m1, m2, m3, m4, m5) if m.errors]
    assert not errors, errors


def test_confluent_group_subscribe(broker, topic_name):
    """Formerly a strict xfail in test_not_yet_built.py."""
    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    try:
        ck_create_topics(admin, {name: 1})
    finally:
        admin = None
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"g", headers=[], timestamp=None)])
    c = Consumer(ck_conf(broker.bootstrap, **{"group.id": topic_name("group"), "auto.offset.reset": "earliest"}))
    try:
        c.subscribe([name])
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        assert got == [b"g"]
    finally:
        c.close()
        c = None


@pytest.mark.parametrize("assignor", ["range", "roundrobin"])
def test_kafka_python_group_commits_and_new_member_resumes(broker, admin, assignor):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.errors import CommitFailedError, RebalanceInProgressError

    topic, group = unique("kp-commit"), unique("kp-commit-group")
    ck_create_topics(admin, {topic: 3})
    first = [dict(partition=i % 3, key=None, value=f"first-{i}".encode(), headers=[], timestamp=None)
             for i in range(90)]
    ck_produce(broker.bootstrap, topic, first)

    def consumer(**extra):
        return KafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False, session_timeout_ms=10000, heartbeat_interval_ms=1000,
            request_timeout_ms=20000, **kp_assignor(assignor), **extra)

    # Each consumer polls on its own thread, as applications do. (Polling two
    # kafka-python 3.0 consumers alternately from one thread livelocks the group
    # whatever the broker: a JoinGroup that completes while its consumer is not
    # inside poll() is discarded and sent again, so the leader rejoins forever.)
    got: dict = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list = []

    def run(client_id):
        c = consumer(client_id=client_id)
        try:
            while not stop.is_set():
                batch = c.poll(timeout_ms=100)
                with lock:
                    for tp, recs in batch.items():
                        for r in recs:
                            got[r.value] = client_id
                if batch:
                    try:
                        c.commit()
                    except (CommitFailedError, RebalanceInProgressError):
                        pass  # revoked mid-rebalance: the next owner reads from the last commit
        except Exception as e:  # surfaced by the assertion below
            errors.append((client_id, e))
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in ("kp-a", "kp-b")]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(got) >= 90 or errors, what="both consumers consumed the 90 records", timeout=60)
        assert not errors, errors
        with lock:
            assert set(got) == {r["value"] for r in first}
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "consumers closed"
    assert not errors, errors

    kp = kp_admin(broker.bootstrap)
    try:
        offsets = kp.list_group_offsets(group)[group]
        assert {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic} == {0: 30, 1: 30, 2: 30}
    finally:
        kp.close()

    second = [dict(partition=i % 3, key=None, value=f"second-{i}".encode(), headers=[], timestamp=None)
              for i in range(30)]
    ck_produce(broker.bootstrap, topic, second)
    c = consumer(client_id="kp-c")
    try:
        resumed = []
        deadline = time.monotonic() + 60
        while len(resumed) < 30:
            assert time.monotonic() < deadline, f"resumed consumer got {len(resumed)} of 30: {resumed}"
            for tp, recs in c.poll(timeout_ms=200).items():
                resumed += [(r.partition, r.offset, r.value) for r in recs]
        for _ in range(10):
            for tp, recs in c.poll(timeout_ms=100).items():
                resumed += [(r.partition, r.offset, r.value) for r in recs]
        assert sorted(resumed) == sorted(
            (i % 3, 30 + i // 3, f"second-{i}".encode()) for i in range(30)), "resumed at the committed offsets"
        c.commit()
        assert c.committed(KTP(topic, 0)) == 40
    finally:
        c.close()


def test_static_member_rejoins_without_rebalance(broker, admin):
    topic, group = unique("static"), unique("static-group")
    ck_create_topics(admin, {topic: 4})
    seen: dict = {}
    lock = threading.Lock()

    def member(name, instance):
        return Member("ck", name, broker.bootstrap, group, topic, seen, lock, **{
            "group.instance.id": instance, "session.timeout.ms": 30000,
            "partition.assignment.strategy": "range"})

    a, b = member("a", "instance-a"), member("b", "instance-b")
    a2 = None
    try:
        wait_stable([a, b], 4)
        a_partitions, b_calls = set(a.assigned), b.assign_calls
        desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
        assert desc.state == ConsumerGroupState.STABLE
        assert sorted(m.group_instance_id for m in desc.members) == ["instance-a", "instance-b"]
        a.leave()
        a2 = member("a2", "instance-a")
        wait_until(lambda: a2.assigned, timeout=30, what="the restarted static member to be assigned")
        assert a2.assigned == a_partitions
        time.sleep(5)  # observation window: a rebalance would reach b within a few heartbeats
        assert b.assign_calls == b_calls, "the other member was rebalanced"
        desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
        assert desc.state == ConsumerGroupState.STABLE
        assert sorted((m.group_instance_id, m.client_id) for m in desc.members) == [
            ("instance-a", "member-a2"), ("instance-b", "member-b")]
    finally:
        for m in (a2, b):
            if m is not None:
                m.leave()


def test_admin_list_describe_delete_groups_and_offsets(broker, admin):
    from kafka import TopicPartition as KTP

    topic, group = unique("admin"), unique("admin-group")
    ck_create_topics(admin, {topic: 4})
    ck_produce(broker.bootstrap, topic, [dict(partition=p, key=None, value=f"v{p}-{i}".encode(), headers=[],
                                             timestamp=None) for p in range(4) for i in range(5)])
    seen: dict = {}
    lock = threading.Lock()
    members = [Member("ck", n, broker.bootstrap, group, topic, seen, lock,
                      **{"partition.assignment.strategy": "range"}) for n in ("a", "b")]
    try:
        wait_stable(members, 4)
        wait_until(lambda: len(seen) == 20, what="20 records consumed")

        def listed(states):
            res = admin.list_consumer_groups(states=states, request_timeout=T).result(timeout=T)
            assert not res.errors, res.errors
            return {g.group_id: g for g in res.valid}

        assert group in listed({ConsumerGroupState.STABLE})
        assert listed({ConsumerGroupState.STABLE})[group].state == ConsumerGroupState.STABLE
        assert group not in listed({ConsumerGroupState.EMPTY})

        desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert not desc.is_simple_consumer_group
        assert desc.coordinator.id == 1
        assert sorted(m.client_id for m in desc.members) == ["member-a", "member-b"]
        by_client = {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                     for m in desc.members}
        assert by_client == {"member-a": sorted(members[0].assigned), "member-b": sorted(members[1].assigned)}

        fut = admin.delete_consumer_groups([group], request_timeout=T)[group]
        with pytest.raises(KafkaException) as exc:
            fut.result(timeout=T)
        assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        for m in members:
            m.leave()
    assert not any(m.errors for m in members), [m.errors for m in members]

    def committed():
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=T)
        got = res[group].result(timeout=T)
        return {tp.partition: tp.offset for tp in got.topic_partitions if tp.topic == topic}

    assert committed() == {0: 5, 1: 5, 2: 5, 3: 5}
    assert group in listed({ConsumerGroupState.EMPTY})

    res = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1), TopicPartition(topic, 2, 3)])],
        request_timeout=T)
    altered = res[group].result(timeout=T)
    assert all(tp.error is None for tp in altered.topic_partitions), altered.topic_partitions
    assert committed() == {0: 1, 1: 5, 2: 3, 3: 5}

    # OffsetDelete (kafka-python; confluent-kafka has no binding for it).
    kp = kp_admin(broker.bootstrap)
    try:
        result = kp.delete_group_offsets(group, [KTP(topic, 1)])
        assert {tp.partition: err.__name__ for tp, err in result.items()} == {1: "NoError"}
    finally:
        kp.close()
    after_delete = committed()
    assert after_delete.get(1, OFFSET_INVALID) == OFFSET_INVALID, after_delete
    assert {p: o for p, o in after_delete.items() if p != 1} == {0: 1, 2: 3, 3: 5}

    admin.delete_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
    assert group not in listed(None)
    fut = admin.delete_consumer_groups([group], request_timeout=T)[group]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def advertised_api_keys(port: int) -> list[int]:
    """The API keys in the broker's ApiVersions v0 response (raw socket)."""
    client_id = b"millrace-py"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = s.recv(65536)
            assert chunk, "connection closed during ApiVersions"
            data += chunk
    correlation, error, count = struct.unpack(">ihi", data[4:14])
    assert (correlation, error) == (7, 0), (correlation, error)
    return [struct.unpack(">hhh", data[14 + 6 * i:20 + 6 * i])[0] for i in range(count)]


def test_kip848_consumer_protocol_group_of_two(broker, admin):
    version, version_int = libversion()
    if version_int < 0x020C0000:
        pytest.skip(f"librdkafka {version} in confluent-kafka has no GA KIP-848 consumer protocol (needs 2.12)")
    keys = advertised_api_keys(broker.port)
    # librdkafka waits silently when the broker lacks the API: say so at once.
    assert 68 in keys, (
        f"the broker does not advertise ConsumerGroupHeartbeat (API 68), so group.protocol=consumer cannot "
        f"work; advertised: {sorted(keys)}")
    topic, group = unique("kip848"), unique("kip848-group")
    ck_create_topics(admin, {topic: 4})
    seen: dict = {}
    lock = threading.Lock()
    members = [Member("ck", n, broker.bootstrap, group, topic, seen, lock, **{"group.protocol": "consumer"})
               for n in ("a", "b")]
    try:
        producer = produce_paced(broker.bootstrap, topic, 4, "kip848", 400, 50, 0.1)
        wait_stable(members, 4)
        values = join_producer(producer)
        wait_until(lambda: all(v in seen for v in values), timeout=60,
                   what=f"all records consumed ({len(seen)} so far, errors {[m.errors for m in members]})")
        assert set(seen) == set(values)
        desc = admin.describe_consumer_groups([group], request_timeout=T)[group].result(timeout=T)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert desc.state == ConsumerGroupState.STABLE
        assert len(desc.members) == 2
    finally:
        for m in members:
            m.leave()
    assert not any(m.errors for m in members), [m.errors for m in members]
