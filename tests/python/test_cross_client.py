"""Records written by one client read back byte-identical by every other.

Each producer writes its data set once into a fresh 3-partition topic; each
consumer then reads the whole topic and must return exactly the keys,
values, headers, timestamps, partitions and offsets that were written.
"""

from __future__ import annotations

import pytest

from clients import (
    ck_admin,
    ck_consume,
    ck_create_topics,
    ck_produce,
    comparable,
    expected_records,
    kcat_consume,
    kcat_header_view,
    kcat_produce,
    kp_consume,
    kp_produce,
    now_ms,
    sample_records,
)

PRODUCERS = ["confluent-kafka", "kafka-python", "kcat"]
# kcat reads twice: plain (null prints as nothing) and with -Z (as NULL).
CONSUMERS = ["confluent-kafka", "kafka-python", "kcat", "kcat-Z"]

KCAT_HEADERS = [("source", b"kcat"), ("dup", b"1"), ("dup", b"2"), ("bin", b"\xff\x80\x01")]


def kcat_records() -> list[dict]:
    """What kcat can write: per-partition key/value, the same headers on all."""
    per_partition = {
        0: [dict(key=b"key-0", value=b"hello"), dict(key=None, value=b"\x00\x01\xff\xfe\n\t binary"),
            dict(key=b"", value=b"empty key"), dict(key=b"empty value", value=b"")],
        1: [dict(key=b"\xff\xfe\xfd\x00", value="h\u00e9llo \u2713".encode())],
        2: [dict(key=f"seq-{i}".encode(), value=f"value-{i}".encode()) for i in range(5)],
    }
    return [dict(partition=p, headers=list(KCAT_HEADERS), timestamp=None, **r)
            for p, recs in per_partition.items() for r in recs]


@pytest.fixture(scope="module")
def produced(broker):
    """producer name -> (topic, expected records), produced on first use."""
    admin = ck_admin(broker.bootstrap)
    cache: dict[str, tuple[str, list[dict]]] = {}

    def get(producer: str):
        if producer in cache:
            return cache[producer]
        topic = f"cross-{producer}-{now_ms()}"
        ck_create_topics(admin, {topic: 3})
        base = now_ms() - 120_000
        if producer == "confluent-kafka":
            records = sample_records(base)
            expected = expected_records(records, ck_produce(broker.bootstrap, topic, records))
        elif producer == "kafka-python":
            records = sample_records(base, null_key_and_value=False, null_header_values=False)
            expected = expected_records(records, kp_produce(broker.bootstrap, topic, records))
        else:
            records = kcat_records()
            for p in range(3):
                kcat_produce(broker.bootstrap, topic, p, [r for r in records if r["partition"] == p],
                             headers=KCAT_HEADERS)
            expected = expected_records(records)
        cache[producer] = (topic, expected)
        return cache[producer]

    yield get
    del get, admin  # let librdkafka's threads go before the broker stops


def consume(consumer: str, bootstrap: str, topic: str) -> list[dict]:
    if consumer == "confluent-kafka":
        return ck_consume(bootstrap, topic, [0, 1, 2])
    if consumer == "kafka-python":
        return kp_consume(bootstrap, topic, [0, 1, 2])
    return kcat_consume(bootstrap, topic, null_str=consumer == "kcat-Z")


@pytest.mark.parametrize("consumer", CONSUMERS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_read_back_identical(broker, produced, producer, consumer):
    topic, expected = produced(producer)
    got = comparable(consume(consumer, broker.bootstrap, topic))
    if producer == "kcat":
        # kcat stamps CreateTime itself: every consumer must see the same
        # stamps, so compare against confluent-kafka's reading of them.
        reference = comparable(ck_consume(broker.bootstrap, topic, [0, 1, 2]))
        assert all(r["timestamp"] > 0 for r in reference)
        for e, r in zip(expected, reference):
            e["timestamp"] = r["timestamp"]
    if consumer.startswith("kcat"):
        expected = kcat_header_view(expected)
    assert got == expected


@pytest.fixture(scope="module")
def bulk_topic(broker):
    """30,000 records over 3 partitions, written in many batches (confluent-kafka)."""
    admin = ck_admin(broker.bootstrap)
    topic = f"cross-bulk-{now_ms()}"
    ck_create_topics(admin, {topic: 3})
    base = now_ms() - 10_000
    records = [dict(partition=i % 3, key=b"%08d" % i, value=(b"%d:" % i) + b"." * (i % 97), headers=[],
                    timestamp=base + i // 10) for i in range(30_000)]
    expected = expected_records(records, ck_produce(broker.bootstrap, topic, records,
                                                    **{"linger.ms": 20, "batch.size": 65536}))
    yield topic, expected
    del admin


@pytest.mark.parametrize("consumer", CONSUMERS)
def test_bulk_read_back_in_order(broker, bulk_topic, consumer):
    topic, expected = bulk_topic
    got = comparable(consume(consumer, broker.bootstrap, topic))
    assert len(got) == len(expected)
    assert got == expected


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_topic_compression_type_is_read_by_every_client(broker, topic_name, codec):
    # The broker recompresses uncompressed batches to the topic's codec.
    admin = ck_admin(broker.bootstrap)
    topic = topic_name()
    ck_create_topics(admin, {topic: 3}, configs={topic: {"compression.type": codec}})
    records = sample_records(now_ms() - 1000, null_key_and_value=False, null_header_values=False)
    expected = expected_records(records, kp_produce(broker.bootstrap, topic, records))
    assert comparable(ck_consume(broker.bootstrap, topic, [0, 1, 2])) == expected
    assert comparable(kp_consume(broker.bootstrap, topic, [0, 1, 2])) == expected
    assert comparable(kcat_consume(broker.bootstrap, topic)) == kcat_header_view(expected)
