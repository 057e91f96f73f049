"""confluent-kafka (librdkafka) against a real Millrace broker."""

from __future__ import annotations

import pytest
from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclOperation,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from clients import (
    CLIENT_TIMEOUT_S,
    blob,
    ck_admin,
    ck_consume,
    ck_create_topics,
    ck_partition_count,
    ck_produce,
    ck_watermarks,
    comparable,
    expected_records,
    now_ms,
    sample_records,
    wait_until,
)

T = CLIENT_TIMEOUT_S


@pytest.fixture(scope="module")
def admin(broker):
    return ck_admin(broker.bootstrap)


def test_metadata_lists_the_broker(broker, admin):
    md = admin.list_topics(timeout=10)
    assert [(b.id, b.host, b.port) for b in md.brokers.values()] == [(1, "127.0.0.1", broker.port)]
    assert md.cluster_id
    assert md.controller_id == 1

    cluster = admin.describe_cluster(request_timeout=10).result(timeout=T)
    assert cluster.cluster_id == md.cluster_id
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    assert cluster.controller.id == 1

    # Without ACLs everything is allowed: exactly Kafka's operations for the
    # CLUSTER resource (clients map these bits to enums and fail on others).
    cluster = admin.describe_cluster(include_authorized_operations=True, request_timeout=10).result(timeout=T)
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE,
    }


def test_create_topics(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 3}, configs={name: {"cleanup.policy": "compact", "retention.ms": "7200000"}})

    md = admin.list_topics(topic=name, timeout=10).topics[name]
    assert md.error is None
    assert sorted(md.partitions) == [0, 1, 2]
    for p in md.partitions.values():
        assert (p.leader, p.replicas, p.isrs) == (1, [1], [1])

    desc = admin.describe_topics(TopicCollection([name]), request_timeout=10)[name].result(timeout=T)
    assert desc.name == name
    assert not desc.is_internal
    assert desc.topic_id is not None
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    assert all(p.leader.id == 1 and [r.id for r in p.replicas] == [1] and [r.id for r in p.isr] == [1]
               for p in desc.partitions)
    desc = admin.describe_topics(TopicCollection([name]), include_authorized_operations=True,
                                 request_timeout=10)[name].result(timeout=T)
    assert set(desc.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }

    configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)])
    entries = list(configs.values())[0].result(timeout=T)
    assert entries["cleanup.policy"].value == "compact"
    assert entries["retention.ms"].value == "7200000"

    # Creating it again is an error users handle.
    fut = admin.create_topics([NewTopic(name, 1, 1)], request_timeout=10)[name]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_create_topics_validate_only_and_invalid(broker, admin, topic_name):
    name = topic_name()
    admin.create_topics([NewTopic(name, 2, 1)], validate_only=True, request_timeout=10)[name].result(timeout=T)
    md = admin.list_topics(timeout=10)
    assert name not in md.topics

    bad = topic_name("bad")
    fut = admin.create_topics([NewTopic(bad, 1, 3)], request_timeout=10)[bad]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR

    bad_cfg = topic_name("badcfg")
    fut = admin.create_topics([NewTopic(bad_cfg, 1, 1, config={"retention.ms": "soon"})], request_timeout=10)[bad_cfg]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_produce_and_consume_exact_bytes(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 3})
    records = sample_records(now_ms() - 60_000)
    reports = ck_produce(broker.bootstrap, name, records)
    for r, rep in zip(records, reports):
        assert rep["timestamp"] == (TIMESTAMP_CREATE_TIME, r["timestamp"])

    got = ck_consume(broker.bootstrap, name, [0, 1, 2])
    assert comparable(got) == expected_records(records, reports)
    assert {r["timestamp_type"] for r in got} == {TIMESTAMP_CREATE_TIME}


def test_auto_create_on_produce(broker, admin, topic_name):
    name = topic_name()
    ck_produce(broker.bootstrap, name, [dict(key=b"k", value=b"v", headers=[], timestamp=None, partition=0)])
    assert ck_partition_count(admin, name) >= 1
    got = ck_consume(broker.bootstrap, name, [0])
    assert [(r["key"], r["value"]) for r in got] == [(b"k", b"v")]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches(broker, admin, topic_name, codec):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    base = now_ms()
    records = [
        dict(partition=0, key=f"k{i}".encode(), value=(b"compressible " * 50) + blob(64, seed=i),
             headers=[("codec", codec.encode())], timestamp=base + i)
        for i in range(200)
    ]
    reports = ck_produce(broker.bootstrap, name, records, **{"compression.type": codec, "linger.ms": 50})
    got = ck_consume(broker.bootstrap, name, [0])
    assert comparable(got) == expected_records(records, reports)
    # Consumers can start in the middle of a compressed batch.
    mid = ck_consume(broker.bootstrap, name, [0], start=137)
    assert comparable(mid) == expected_records(records)[137:]


def test_consume_from_offsets(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    base = now_ms()
    records = [dict(partition=0, key=None, value=f"m{i}".encode(), headers=[], timestamp=base + i) for i in range(10)]
    ck_produce(broker.bootstrap, name, records)
    got = ck_consume(broker.bootstrap, name, [0], start=6)
    assert [(r["offset"], r["value"]) for r in got] == [(i, f"m{i}".encode()) for i in range(6, 10)]
    assert ck_watermarks(broker.bootstrap, name, 0) == (0, 10)


def test_list_offsets(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 2})
    base = now_ms() - 100_000
    # Timestamps out of order: the max timestamp is at offset 2.
    stamps = [base, base + 10_000, base + 50_000, base + 20_000, base + 30_000]
    records = [dict(partition=0, key=None, value=f"v{i}".encode(), headers=[], timestamp=ts)
               for i, ts in enumerate(stamps)]
    ck_produce(broker.bootstrap, name, records)
    p0, p1 = TopicPartition(name, 0), TopicPartition(name, 1)

    def offsets(specs):
        futs = admin.list_offsets(specs, request_timeout=10)
        return {tp.partition: fut.result(timeout=T) for tp, fut in futs.items()}

    res = offsets({p0: OffsetSpec.earliest(), p1: OffsetSpec.earliest()})
    assert (res[0].offset, res[1].offset) == (0, 0)
    res = offsets({p0: OffsetSpec.latest(), p1: OffsetSpec.latest()})
    assert (res[0].offset, res[1].offset) == (5, 0)

    assert offsets({p0: OffsetSpec.for_timestamp(base)})[0].offset == 0
    assert offsets({p0: OffsetSpec.for_timestamp(base + 1)})[0].offset == 1
    res = offsets({p0: OffsetSpec.for_timestamp(base + 15_000)})[0]
    assert (res.offset, res.timestamp) == (2, base + 50_000)
    assert offsets({p0: OffsetSpec.for_timestamp(base + 50_000)})[0].offset == 2
    assert offsets({p0: OffsetSpec.for_timestamp(base + 50_001)})[0].offset == -1
    assert offsets({p1: OffsetSpec.for_timestamp(base)})[1].offset == -1
    res = offsets({p0: OffsetSpec.max_timestamp()})[0]
    assert (res.offset, res.timestamp) == (2, base + 50_000)
    res = offsets({p1: OffsetSpec.max_timestamp()})[1]
    assert (res.offset, res.timestamp) == (-1, -1)

    # The consumer's offsets_for_times uses the same API.
    from clients import ck_consumer

    c = ck_consumer(broker.bootstrap)
    try:
        got = c.offsets_for_times([TopicPartition(name, 0, base + 15_000), TopicPartition(name, 1, base)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in got] == [(0, 2), (1, -1)]
        assert c.get_watermark_offsets(p0, timeout=10, cached=False) == (0, 5)
    finally:
        c.close()


def test_describe_and_incremental_alter_configs(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    resource = ConfigResource(ResourceType.TOPIC, name)

    def describe():
        return admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=T)

    entries = describe()
    for key in ("cleanup.policy", "retention.ms", "segment.bytes", "max.message.bytes", "min.insync.replicas"):
        assert key in entries, key
    assert entries["cleanup.policy"].value == "delete"
    assert entries["retention.ms"].value == "604800000"
    assert entries["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert entries["retention.ms"].is_default
    # Set in server.properties: a static broker config.
    assert entries["min.insync.replicas"].source == ConfigSource.STATIC_BROKER_CONFIG.value

    def alter(*ops, validate_only=False):
        res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(ops))
        admin.incremental_alter_configs([res], validate_only=validate_only, request_timeout=10)[res].result(timeout=T)

    alter(ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET))
    entries = describe()
    assert entries["retention.ms"].value == "3600000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "compact"

    alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND))
    assert set(describe()["cleanup.policy"].value.split(",")) == {"compact", "delete"}
    alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT))
    assert describe()["cleanup.policy"].value == "delete"

    alter(ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET), validate_only=True)
    assert describe()["retention.ms"].value == "3600000"

    alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    entries = describe()
    assert entries["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert entries["retention.ms"].value == "604800000"

    bad = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "a week", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as exc:
        admin.incremental_alter_configs([bad], request_timeout=10)[bad].result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_describe_broker_configs(broker, admin):
    resource = ConfigResource(ResourceType.BROKER, "1")
    entries = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=T)
    assert entries["auto.create.topics.enable"].value == "true"
    assert entries["default.replication.factor"].value == "1"
    assert "log.retention.hours" in entries or "log.retention.ms" in entries


def test_delete_records(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 2})
    base = now_ms()
    records = [dict(partition=i % 2, key=None, value=f"v{i}".encode(), headers=[], timestamp=base + i)
               for i in range(20)]
    ck_produce(broker.bootstrap, name, records)

    futs = admin.delete_records([TopicPartition(name, 0, 4), TopicPartition(name, 1, OFFSET_END)],
                                request_timeout=10)
    # OFFSET_END (-1) means "up to the high watermark".
    lows = {tp.partition: fut.result(timeout=T).low_watermark for tp, fut in futs.items()}
    assert lows == {0: 4, 1: 10}

    assert ck_watermarks(broker.bootstrap, name, 0) == (4, 10)
    assert ck_watermarks(broker.bootstrap, name, 1) == (10, 10)
    got = ck_consume(broker.bootstrap, name, [0, 1])
    assert [(r["partition"], r["offset"]) for r in got] == [(0, o) for o in range(4, 10)]
    res = admin.list_offsets({TopicPartition(name, 0): OffsetSpec.earliest()}, request_timeout=10)
    assert list(res.values())[0].result(timeout=T).offset == 4

    # Deleting past the high watermark is an error.
    fut = admin.delete_records([TopicPartition(name, 0, 11)], request_timeout=10)
    with pytest.raises(KafkaException) as exc:
        list(fut.values())[0].result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE

    # Producing continues after the deleted prefix.
    ck_produce(broker.bootstrap, name, [dict(partition=1, key=None, value=b"new", headers=[], timestamp=None)])
    got = ck_consume(broker.bootstrap, name, [1])
    assert [(r["offset"], r["value"]) for r in got] == [(10, b"new")]


def test_create_partitions(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    admin.create_partitions([NewPartitions(name, 3)], request_timeout=10)[name].result(timeout=T)
    wait_until(lambda: ck_partition_count(admin, name) == 3, what="3 partitions")
    ck_produce(broker.bootstrap, name, [dict(partition=2, key=b"k", value=b"v2", headers=[], timestamp=None)])
    got = ck_consume(broker.bootstrap, name, [0, 1, 2])
    assert [(r["partition"], r["value"]) for r in got] == [(2, b"v2")]

    fut = admin.create_partitions([NewPartitions(name, 2)], request_timeout=10)[name]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_delete_topics(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 2})
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"old", headers=[], timestamp=None)])
    admin.delete_topics([name], operation_timeout=T, request_timeout=T)[name].result(timeout=T)
    wait_until(lambda: name not in admin.list_topics(timeout=10).topics, what="topic gone from metadata")

    fut = admin.delete_topics([name], request_timeout=10)[name]
    with pytest.raises(KafkaException) as exc:
        fut.result(timeout=T)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    # The same name can be created again and starts empty.
    ck_create_topics(admin, {name: 1})
    assert ck_watermarks(broker.bootstrap, name, 0) == (0, 0)
    assert ck_consume(broker.bootstrap, name, [0]) == []


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_alter_configs_replaces_the_dynamic_set(broker, admin, topic_name):
    # The legacy AlterConfigs API (deprecated in the client but still used)
    # replaces a topic's whole dynamic config: keys left out revert.
    name = topic_name()
    ck_create_topics(admin, {name: 1}, configs={name: {"cleanup.policy": "compact"}})
    resource = ConfigResource(ResourceType.TOPIC, name, set_config={"retention.ms": "7200000"})
    admin.alter_configs([resource], request_timeout=10)[resource].result(timeout=T)

    described = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([described], request_timeout=10)[described].result(timeout=T)
    assert entries["retention.ms"].value == "7200000"
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["cleanup.policy"].value == "delete"
    assert entries["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value


def test_admin_errors(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 2})
    missing = topic_name("missing")

    def error_of(fut) -> int:
        with pytest.raises(KafkaException) as exc:
            fut.result(timeout=T)
        return exc.value.args[0].code()

    r = ConfigResource(ResourceType.TOPIC, missing)
    assert error_of(admin.describe_configs([r], request_timeout=10)[r]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    r = ConfigResource(ResourceType.TOPIC, missing, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(admin.incremental_alter_configs([r], request_timeout=10)[r]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    r = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(admin.incremental_alter_configs([r], request_timeout=10)[r]) == KafkaError.INVALID_CONFIG
    # Static broker configs cannot change at runtime.
    r = ConfigResource(ResourceType.BROKER, "1", incremental_configs=[
        ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)])
    assert error_of(admin.incremental_alter_configs([r], request_timeout=10)[r]) == KafkaError.INVALID_CONFIG
    assert error_of(admin.create_partitions([NewPartitions(missing, 3)], request_timeout=10)[missing]) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART
    zero = topic_name("zero")
    assert error_of(admin.create_topics([NewTopic(zero, 0, 1)], request_timeout=10)[zero]) == \
        KafkaError.INVALID_PARTITIONS


def test_create_topic_with_broker_defaults(broker, admin, topic_name):
    # num_partitions/replication_factor -1: the broker's num.partitions and
    # default.replication.factor (CreateTopics v4+).
    name = topic_name()
    admin.create_topics([NewTopic(name)], request_timeout=10)[name].result(timeout=T)
    wait_until(lambda: ck_partition_count(admin, name) == 1, what="default partition count")
    md = admin.list_topics(topic=name, timeout=10).topics[name]
    assert [p.replicas for p in md.partitions.values()] == [[1]]
