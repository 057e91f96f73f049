"""Partition reassignment and leader election with the Python admin clients
users run, against a three-broker ``millrace cluster``.

kafka-python drives AlterPartitionReassignments / ListPartitionReassignments
(confluent-kafka has no call for them); confluent-kafka drives ElectLeaders
(its ``elect_leaders``), throttle configs and the acks=all data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ElectionType, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import KafkaAdminClient

from conftest import START_TIMEOUT_S, STOP_TIMEOUT_S, millrace_bin

T = 30


def ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


@pytest.fixture(scope="module")
def cluster():
    """``millrace cluster --brokers 3`` on three consecutive free ports."""
    data = Path(tempfile.mkdtemp(prefix="millrace-py-cluster-"))
    base = next(p for p in range(30000 + os.getpid() % 20000, 65000, 7) if ports_free(p, 3))
    log_path = data / "cluster.log"
    env = dict(os.environ)
    env["RUST_LOG"] = os.environ.get("MILLRACE_LOG", "info")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(millrace_bin()), "cluster", "--brokers", "3", "--racks", "3",
             "--base-port", str(base), "--data-dir", str(data / "data"),
             "--override", "auto.leader.rebalance.enable=false",
             "--override", "replica.lag.time.max.ms=2000",
             "--override", "replica.fetch.max.bytes=32768"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    bootstrap = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        for i in range(3):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", base + i), timeout=0.2):
                        break
                except OSError:
                    assert proc.poll() is None, log_path.read_text(errors="replace")
                    assert time.monotonic() < deadline, "cluster not listening"
                    time.sleep(0.05)
        # Listening is not registered: wait until the metadata names all three.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        while len(admin.list_topics(timeout=T).brokers) < 3:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "brokers not registered"
            time.sleep(0.2)
        del admin
        yield bootstrap
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def wait_until(check, what: str, timeout: float = T):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def partition_info(admin: AdminClient, topic: str):
    md = admin.list_topics(topic, timeout=T)
    return md.topics[topic].partitions[0]


def test_reassignment_then_preferred_election(cluster, topic_name):
    topic = topic_name()
    admin = AdminClient({"bootstrap.servers": cluster})
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]])]).values():
        f.result(timeout=T)
    wait_until(lambda: partition_info(admin, topic).leader == 1, "leader 1")

    delivered: list[str] = []

    def on_delivery(err, msg):
        if err is None:
            delivered.append(msg.value().decode())

    producer = Producer({"bootstrap.servers": cluster, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "batch.size": 16384})
    for i in range(2000):
        producer.produce(topic, value=f"v-{i}-{'z' * 150}", partition=0, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(T) == 0
    assert len(delivered) == 2000

    # Throttle the incoming replica (broker 3) so the move is seen in progress.
    resources = [
        ConfigResource(ResourceType.BROKER, "3", incremental_configs=[
            ConfigEntry("follower.replication.throttled.rate", "50000",
                        incremental_operation=AlterConfigOpType.SET)]),
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("follower.replication.throttled.replicas", "0:3",
                        incremental_operation=AlterConfigOpType.SET)]),
    ]
    for f in admin.incremental_alter_configs(resources).values():
        f.result(timeout=T)

    kp = KafkaAdminClient(bootstrap_servers=cluster, request_timeout_ms=T * 1000)
    try:
        tp = KpTopicPartition(topic, 0)
        assert kp.alter_partition_reassignments({tp: [2, 3]}) == {tp: None}
        ongoing = kp.list_partition_reassignments()
        assert ongoing[tp] == {"replicas": [2, 3, 1], "adding_replicas": [3],
                               "removing_replicas": [1]}, ongoing
        assert kp.list_partition_reassignments([tp]) == ongoing

        # Lift the throttle: broker 3 catches up and the move completes;
        # the removed leader (1) hands over to the first in-sync target (2).
        for f in admin.incremental_alter_configs([ConfigResource(
                ResourceType.BROKER, "3", incremental_configs=[
                    ConfigEntry("follower.replication.throttled.rate", None,
                                incremental_operation=AlterConfigOpType.DELETE)])]).values():
            f.result(timeout=T)
        wait_until(lambda: not kp.list_partition_reassignments(), "the move to complete", timeout=60)
        p = partition_info(admin, topic)
        assert (p.replicas, p.leader) == ([2, 3], 2), (p.replicas, p.leader)
        assert sorted(p.isrs) == [2, 3]

        # A reorder within the ISR completes at once; the leader stays.
        assert kp.alter_partition_reassignments({tp: [3, 2]}) == {tp: None}
        wait_until(lambda: partition_info(admin, topic).replicas == [3, 2], "the reorder")
        assert partition_info(admin, topic).leader == 2
    finally:
        kp.close()

    # Preferred election moves leadership to the new first replica.
    ctp = TopicPartition(topic, 0)
    result = admin.elect_leaders(ElectionType.PREFERRED, [ctp]).result(timeout=T)
    assert result[ctp] is None, result
    wait_until(lambda: partition_info(admin, topic).leader == 3, "leader 3")
    result = admin.elect_leaders(ElectionType.PREFERRED, [ctp]).result(timeout=T)
    assert result[ctp] is not None and result[ctp].code() == KafkaError.ELECTION_NOT_NEEDED, result

    # Everything acknowledged is read back from the new replicas.
    consumer = Consumer({"bootstrap.servers": cluster, "group.id": topic,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: set[str] = set()
    deadline = time.monotonic() + T
    while len(seen) < len(delivered) and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            seen.add(m.value().decode())
    consumer.close()
    assert seen == set(delivered)
