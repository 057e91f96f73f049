"""kafka-python against a real Millrace broker.

kafka-python picks request versions from the broker version it infers from
the ApiVersions response (``api_version=None``, the default): these tests
leave that on and check the inference lands on Kafka 3.7, the version
Millrace is compatible with.
"""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka import errors as Errors
from kafka.admin import ConfigResource, OffsetSpec

from clients import (
    CLIENT_TIMEOUT_S,
    blob,
    comparable,
    expected_records,
    kp_admin,
    kp_consume,
    kp_consumer,
    kp_produce,
    kp_producer,
    now_ms,
    sample_records,
    wait_until,
)

TIMEOUT_MS = int(CLIENT_TIMEOUT_S * 1000)


@pytest.fixture(scope="module")
def admin(broker):
    a = kp_admin(broker.bootstrap)
    yield a
    a.close()


def create_topics(admin: KafkaAdminClient, topics: dict[str, int], configs: dict[str, dict] | None = None):
    res = admin.create_topics(
        {name: {"num_partitions": n, "replication_factor": 1, "configs": (configs or {}).get(name, {})}
         for name, n in topics.items()},
        timeout_ms=TIMEOUT_MS,
    )
    assert {t["name"]: t["error_code"] for t in res["topics"]} == {name: 0 for name in topics}
    for name, n in topics.items():
        wait_until(lambda: partition_count(admin, name) == n, what=f"metadata for {name}")


def partition_count(admin: KafkaAdminClient, topic: str) -> int:
    [t] = admin.describe_topics([topic])
    if t["error_code"] != 0 or any(p["leader_id"] < 0 for p in t["partitions"]):
        return -1
    return len(t["partitions"])


def test_api_version_auto_detection(broker, admin):
    # api_version=None (the default) makes every client ask the broker.
    assert KafkaAdminClient.DEFAULT_CONFIG["api_version"] is None
    inferred = admin._client.get_broker_version()
    assert inferred >= (3, 7), f"kafka-python inferred broker version {inferred}"

    producer = kp_producer(broker.bootstrap)
    try:
        assert producer.config["api_version"] >= (3, 7)
        md = producer.send("kp-api-version-check", b"v").get(timeout=CLIENT_TIMEOUT_S)
        assert md.offset >= 0
    finally:
        producer.close(timeout=10)
    consumer = kp_consumer(broker.bootstrap)
    try:
        assert consumer.config["api_version"] >= (3, 7)
        assert "kp-api-version-check" in consumer.topics()
    finally:
        consumer.close()


def test_describe_cluster_and_log_dirs(broker, admin, topic_name):
    cluster = admin.describe_cluster()
    assert cluster["cluster_id"]
    assert cluster["controller_id"] == 1
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, "127.0.0.1", broker.port)]

    name = topic_name()
    create_topics(admin, {name: 2})
    kp_produce(broker.bootstrap, name, [dict(partition=1, key=b"k", value=b"x" * 1000)])
    [entry] = admin.describe_log_dirs({name: [0, 1]})
    assert entry["broker"] == 1
    [log_dir] = entry["log_dirs"]
    assert log_dir["error_code"] == 0
    assert log_dir["log_dir"] == str(broker.log_dir)
    sizes = {p["partition_index"]: p["partition_size"]
             for t in log_dir["topics"] if t["name"] == name for p in t["partitions"]}
    assert sizes[0] == 0
    assert sizes[1] > 1000


def test_create_and_describe_topics(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 3}, configs={name: {"retention.ms": "3600000"}})
    assert name in admin.list_topics()
    [t] = admin.describe_topics([name])
    assert t["error_code"] == 0
    assert not t["is_internal"]
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) for p in t["partitions"]] == [
        (i, 1, [1], [1]) for i in range(3)
    ]

    # By topic id (KIP-516, Metadata v12).
    [by_id] = admin.describe_topics([uuid.UUID(t["topic_id"])])
    assert (by_id["name"], by_id["topic_id"], len(by_id["partitions"])) == (name, t["topic_id"], 3)

    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)
    with pytest.raises(Errors.InvalidReplicationFactorError):
        admin.create_topics({topic_name("rf"): {"num_partitions": 1, "replication_factor": 2}}, timeout_ms=TIMEOUT_MS)


def test_produce_and_consume_exact_bytes(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 3})
    # kafka-python cannot send a record with both key and value null, nor a
    # null header value (it reads them back fine: see test_cross_client.py).
    records = sample_records(now_ms() - 60_000, null_key_and_value=False, null_header_values=False)
    reports = kp_produce(broker.bootstrap, name, records)
    for r, rep in zip(records, reports):
        assert rep["timestamp"] == r["timestamp"]

    got = kp_consume(broker.bootstrap, name, [0, 1, 2])
    assert comparable(got) == expected_records(records, reports)
    assert {r["timestamp_type"] for r in got} == {0}  # CreateTime


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches(broker, admin, topic_name, codec):
    name = topic_name()
    create_topics(admin, {name: 1})
    base = now_ms()
    records = [
        dict(partition=0, key=f"k{i}".encode(), value=(b"compressible " * 50) + blob(64, seed=i),
             headers=[("codec", codec.encode())], timestamp=base + i)
        for i in range(200)
    ]
    reports = kp_produce(broker.bootstrap, name, records, compression_type=codec, linger_ms=50)
    got = kp_consume(broker.bootstrap, name, [0])
    assert comparable(got) == expected_records(records, reports)
    mid = kp_consume(broker.bootstrap, name, [0], start=137)
    assert comparable(mid) == expected_records(records)[137:]


def test_list_offsets(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 2})
    base = now_ms() - 100_000
    stamps = [base, base + 10_000, base + 50_000, base + 20_000, base + 30_000]
    kp_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=f"v{i}".encode(), timestamp=ts)
                                        for i, ts in enumerate(stamps)])
    p0, p1 = TopicPartition(name, 0), TopicPartition(name, 1)

    c = kp_consumer(broker.bootstrap)
    try:
        assert c.beginning_offsets([p0, p1], timeout_ms=TIMEOUT_MS) == {p0: 0, p1: 0}
        assert c.end_offsets([p0, p1], timeout_ms=TIMEOUT_MS) == {p0: 5, p1: 0}
        res = c.offsets_for_times({p0: base + 15_000, p1: base}, timeout_ms=TIMEOUT_MS)
        assert (res[p0].offset, res[p0].timestamp) == (2, base + 50_000)
        assert res[p1] is None
        res = c.offsets_for_times({p0: base}, timeout_ms=TIMEOUT_MS)
        assert (res[p0].offset, res[p0].timestamp) == (0, base)
        assert c.offsets_for_times({p0: base + 50_001}, timeout_ms=TIMEOUT_MS)[p0] is None
    finally:
        c.close()

    res = admin.list_partition_offsets({p0: OffsetSpec.EARLIEST, p1: OffsetSpec.LATEST})
    assert (res[p0].offset, res[p1].offset) == (0, 0)
    res = admin.list_partition_offsets({p0: OffsetSpec.LATEST})
    assert res[p0].offset == 5
    res = admin.list_partition_offsets({p0: OffsetSpec.MAX_TIMESTAMP})
    assert (res[p0].offset, res[p0].timestamp) == (2, base + 50_000)
    res = admin.list_partition_offsets({p0: base + 1})
    assert (res[p0].offset, res[p0].timestamp) == (1, base + 10_000)


def test_describe_and_alter_configs(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 1})

    def describe(keys=None, config_filter="all"):
        res = admin.describe_configs([ConfigResource("TOPIC", name, keys)], config_filter=config_filter)
        return res["topic"][name]

    everything = describe()
    assert everything["cleanup.policy"]["value"] == "delete"
    assert everything["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert everything["retention.ms"]["value"] == "604800000"
    assert everything["retention.ms"]["config_type"] == "LONG"
    assert everything["min.insync.replicas"]["config_source"] == "STATIC_BROKER_CONFIG"
    assert describe(config_filter="modified") == {}
    assert set(describe(["retention.ms", "segment.bytes"])) == {"retention.ms", "segment.bytes"}

    # Default: IncrementalAlterConfigs (SET / DELETE).
    assert admin.alter_configs([ConfigResource("TOPIC", name, {"retention.ms": "3600000"})]) == {"topic": {name: "OK"}}
    got = describe(["retention.ms"])["retention.ms"]
    assert (got["value"], got["config_source"]) == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert set(describe(config_filter="modified")) == {"retention.ms"}

    # The legacy AlterConfigs API.
    res = admin.alter_configs([ConfigResource("TOPIC", name, {"cleanup.policy": "compact"})], incremental=False)
    assert res == {"topic": {name: "OK"}}
    modified = describe(config_filter="modified")
    assert {k: v["value"] for k, v in modified.items()} == {"retention.ms": "3600000", "cleanup.policy": "compact"}

    admin.reset_configs([ConfigResource("TOPIC", name, ["retention.ms", "cleanup.policy"])])
    assert describe(config_filter="modified") == {}
    assert describe(["retention.ms"])["retention.ms"]["value"] == "604800000"

    res = admin.alter_configs([ConfigResource("TOPIC", name, {"retention.ms": "a week"})])
    # kafka-python reports a per-resource error as its string form.
    assert str(res["topic"][name]).startswith("[Error 40] InvalidConfigurationError"), res


def test_describe_broker_configs(broker, admin):
    res = admin.describe_configs([ConfigResource("BROKER", "1")], config_filter="all")
    entries = res["broker"]["1"]
    assert entries["auto.create.topics.enable"]["value"] == "true"
    assert entries["default.replication.factor"]["value"] == "1"


def test_delete_records(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 2})
    kp_produce(broker.bootstrap, name, [dict(partition=i % 2, key=None, value=f"v{i}".encode()) for i in range(20)])
    p0, p1 = TopicPartition(name, 0), TopicPartition(name, 1)

    res = admin.delete_records({p0: 4, p1: -1})
    assert {tp.partition: (r["low_watermark"], r["error_code"]) for tp, r in res.items()} == {0: (4, 0), 1: (10, 0)}

    c = kp_consumer(broker.bootstrap)
    try:
        assert c.beginning_offsets([p0, p1], timeout_ms=TIMEOUT_MS) == {p0: 4, p1: 10}
        assert c.end_offsets([p0, p1], timeout_ms=TIMEOUT_MS) == {p0: 10, p1: 10}
    finally:
        c.close()
    got = kp_consume(broker.bootstrap, name, [0, 1])
    assert sorted((r["partition"], r["offset"]) for r in got) == [(0, o) for o in range(4, 10)]

    with pytest.raises(Errors.OffsetOutOfRangeError):
        admin.delete_records({p0: 11})


def test_create_partitions(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 1})
    admin.create_partitions({name: 4})
    wait_until(lambda: partition_count(admin, name) == 4, what="4 partitions")
    kp_produce(broker.bootstrap, name, [dict(partition=3, key=b"k", value=b"v3")])
    got = kp_consume(broker.bootstrap, name, [0, 1, 2, 3])
    assert [(r["partition"], r["value"]) for r in got] == [(3, b"v3")]
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({name: 2})


def test_delete_topics(broker, admin, topic_name):
    name = topic_name()
    create_topics(admin, {name: 1})
    res = admin.delete_topics([name], timeout_ms=TIMEOUT_MS)
    assert [(t["name"], t["error_code"]) for t in res["topics"]] == [(name, 0)]
    wait_until(lambda: name not in admin.list_topics(), what="topic gone")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([name], timeout_ms=TIMEOUT_MS)
