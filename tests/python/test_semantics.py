"""Behaviour applications rely on beyond plain produce/consume, seen through
confluent-kafka and kafka-python: long polling, size limits, offset resets,
acks modes, LogAppendTime, topic name rules, many partitions."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_LOG_APPEND_TIME,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic
from kafka import TopicPartition as KTopicPartition
from kafka import errors as Errors

from clients import (
    CLIENT_TIMEOUT_S,
    blob,
    ck_admin,
    ck_conf,
    ck_consume,
    ck_consumer,
    ck_create_topics,
    ck_produce,
    kcat_consume,
    kcat_produce,
    kp_admin,
    kp_consume,
    kp_consumer,
    kp_produce,
    kp_producer,
    now_ms,
)

T = CLIENT_TIMEOUT_S


@pytest.fixture(scope="module")
def admin(broker):
    return ck_admin(broker.bootstrap)


def values(n: int, prefix: str = "v") -> list[dict]:
    return [dict(partition=0, key=None, value=f"{prefix}{i}".encode(), headers=[], timestamp=None) for i in range(n)]


def test_long_poll_sees_records_produced_while_waiting(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    c = ck_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 500})
    try:
        c.assign([TopicPartition(name, 0, 0)])
        m = c.poll(1.0)
        assert m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF)
        producer = threading.Thread(target=ck_produce, args=(broker.bootstrap, name, values(3)))
        producer.start()
        got = []
        deadline = time.monotonic() + T
        while len(got) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        producer.join(T)
        assert got == [b"v0", b"v1", b"v2"]
    finally:
        c.close()


def test_kafka_python_long_poll(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=500)
    try:
        tp = KTopicPartition(name, 0)
        c.assign([tp])
        c.seek(tp, 0)
        assert c.poll(timeout_ms=1000) == {}
        kp_produce(broker.bootstrap, name, [dict(partition=0, key=b"k", value=b"late")])
        got = []
        deadline = time.monotonic() + T
        while not got and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got += [r.value for r in recs]
        assert got == [b"late"]
    finally:
        c.close()


def test_record_over_max_message_bytes_is_refused(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1}, configs={name: {"max.message.bytes": "10000"}})
    p = Producer(ck_conf(broker.bootstrap, **{"enable.idempotence": False, "message.max.bytes": 2_000_000,
                                              "retries": 0}))
    results = []
    # Separate flushes: in one batch the small record would be refused too.
    p.produce(name, value=b"x" * 20_000, partition=0, on_delivery=lambda err, msg: results.append(err))
    assert p.flush(T) == 0
    p.produce(name, value=b"y" * 5_000, partition=0, on_delivery=lambda err, msg: results.append(err))
    assert p.flush(T) == 0
    assert [(e.code() if e else 0) for e in results] == [KafkaError.MSG_SIZE_TOO_LARGE, 0]
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["value"] for r in got] == [b"y" * 5_000]

    kp = kp_producer(broker.bootstrap, retries=0)
    try:
        with pytest.raises(Errors.MessageSizeTooLargeError):
            kp.send(name, value=b"z" * 20_000, partition=0).get(timeout=T)
    finally:
        kp.close(timeout=10)


def test_fetch_returns_a_record_larger_than_the_fetch_limits(broker, admin, topic_name):
    # KIP-74: a consumer always makes progress, whatever its fetch sizes.
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    big = blob(300 * 1024)
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=b"big", value=big, headers=[], timestamp=None),
                                        dict(partition=0, key=b"small", value=b"s", headers=[], timestamp=None)])
    got = ck_consume(broker.bootstrap, name, [0], **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
                                                     "message.max.bytes": 1000})
    assert [(r["key"], r["value"]) for r in got] == [(b"big", big), (b"small", b"s")]
    got = kp_consume(broker.bootstrap, name, [0], fetch_max_bytes=1024, max_partition_fetch_bytes=1024)
    assert [(r["key"], r["value"]) for r in got] == [(b"big", big), (b"small", b"s")]


def test_out_of_range_offsets_reset(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    ck_produce(broker.bootstrap, name, values(10))

    # Past the end: earliest resets to the log start.
    got = ck_consume(broker.bootstrap, name, [0], start=1000, **{"auto.offset.reset": "earliest"})
    assert [r["offset"] for r in got] == list(range(10))
    got = kp_consume(broker.bootstrap, name, [0], start=1000)
    assert [r["offset"] for r in got] == list(range(10))

    # Below the log start after DeleteRecords.
    [fut] = admin.delete_records([TopicPartition(name, 0, 6)], request_timeout=10).values()
    assert fut.result(timeout=T).low_watermark == 6
    got = ck_consume(broker.bootstrap, name, [0], start=2, **{"auto.offset.reset": "earliest"})
    assert [r["offset"] for r in got] == [6, 7, 8, 9]
    got = kp_consume(broker.bootstrap, name, [0], start=2)
    assert [r["offset"] for r in got] == [6, 7, 8, 9]

    # With reset=error the client reports the out-of-range offset.
    c = ck_consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(name, 0, 2)])
        deadline = time.monotonic() + T
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                err = m.error()
            assert m is None or m.error(), f"unexpected record at {m.offset()}"
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()


def test_reset_to_latest_skips_existing_records(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    ck_produce(broker.bootstrap, name, values(5, "old"))
    c = ck_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(name, 0, OFFSET_END)])
        deadline = time.monotonic() + T
        # Wait until the consumer has resolved its position (end of partition).
        at_end = False
        while not at_end and time.monotonic() < deadline:
            m = c.poll(0.5)
            at_end = m is not None and m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF
            assert m is None or m.error(), f"old record delivered at offset {m.offset()}"
        assert at_end, "consumer never reached the end of the partition"
        ck_produce(broker.bootstrap, name, values(2, "new"))
        got = []
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
        assert got == [(5, b"new0"), (6, b"new1")]
    finally:
        c.close()


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_modes(broker, admin, topic_name, acks):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    reports = ck_produce(broker.bootstrap, name, values(20), acks=acks)
    if acks != "0":
        assert [r["offset"] for r in reports] == list(range(20))
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["value"] for r in got] == [f"v{i}".encode() for i in range(20)]

    kp_reports = kp_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"kp")],
                            acks=int(acks) if acks != "all" else "all")
    if acks != "0":
        assert kp_reports[0]["offset"] == 20
    assert [r["value"] for r in ck_consume(broker.bootstrap, name, [0], start=20)] == [b"kp"]


def test_log_append_time_topic(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1}, configs={name: {"message.timestamp.type": "LogAppendTime"}})
    before = now_ms()
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"a", headers=[], timestamp=1_000)])
    kp_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"b", timestamp=2_000)])
    # Compressed batches get the broker's time too (and a new CRC, which
    # the consumers check).
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"c%d" % i, headers=[], timestamp=3_000)
                                        for i in range(3)], **{"compression.type": "lz4", "linger.ms": 50})
    kcat_produce(broker.bootstrap, name, 0, [dict(key=None, value=b"d%d" % i) for i in range(3)],
                 extra=["-z", "gzip"])
    after = now_ms()
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["value"] for r in got] == [b"a", b"b", b"c0", b"c1", b"c2", b"d0", b"d1", b"d2"]
    for r in got:
        assert r["timestamp_type"] == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1000 <= r["timestamp"] <= after + 1000, r
    got_kp = kp_consume(broker.bootstrap, name, [0])
    assert [(r["timestamp_type"], r["timestamp"]) for r in got_kp] == [(1, r["timestamp"]) for r in got]
    assert [r["timestamp"] for r in kcat_consume(broker.bootstrap, name, 0)] == [r["timestamp"] for r in got]


def test_topic_name_rules(broker, admin, topic_name):
    for bad in ["bad name", "bad/name", ".", "..", "x" * 250, "\u00e9t\u00e9"]:
        fut = admin.create_topics([NewTopic(bad, 1, 1)], request_timeout=10)[bad]
        with pytest.raises(KafkaException) as exc:
            fut.result(timeout=T)
        assert exc.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, bad
    ok = "Ok.name_with-all-legal-chars-" + topic_name()[-8:]
    ck_create_topics(admin, {ok: 1})
    longest = "y" * 249
    ck_create_topics(admin, {longest: 1})
    ck_produce(broker.bootstrap, longest, values(1))
    assert [r["value"] for r in kp_consume(broker.bootstrap, longest, [0])] == [b"v0"]


def test_many_partitions(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 64})
    records = [dict(partition=p, key=f"k{p}".encode(), value=f"v{p}".encode(), headers=[], timestamp=None)
               for p in range(64)]
    ck_produce(broker.bootstrap, name, records)
    got = kp_consume(broker.bootstrap, name, list(range(64)))
    assert sorted((r["partition"], r["offset"], r["value"]) for r in got) == [
        (p, 0, f"v{p}".encode()) for p in range(64)
    ]
    # The default partitioner spreads keyed records and keeps each key on one partition.
    keyed = [dict(partition=None, key=f"user-{i % 10}".encode(), value=str(i).encode(), headers=[], timestamp=None)
             for i in range(100)]
    reports = ck_produce(broker.bootstrap, name, keyed)
    by_key: dict[bytes, set[int]] = {}
    for r, rep in zip(keyed, reports):
        by_key.setdefault(r["key"], set()).add(rep["partition"])
    assert all(len(parts) == 1 for parts in by_key.values())
    assert len({p for parts in by_key.values() for p in parts}) > 1

    a = kp_admin(broker.bootstrap)
    try:
        [t] = a.describe_topics([name])
        assert len(t["partitions"]) == 64
    finally:
        a.close()


def test_consumers_do_not_auto_create_topics(broker, admin, topic_name):
    # librdkafka consumers send allow_auto_topic_creation=false in Metadata
    # (allow.auto.create.topics defaults to false for them).
    name = topic_name()
    c = ck_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(name, 0, 0)])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            assert m is None or m.error(), "record from a topic nobody created"
    finally:
        c.close()
    assert name not in admin.list_topics(timeout=10).topics
    # A producer's metadata request does create it (auto.create.topics.enable=true).
    ck_produce(broker.bootstrap, name, values(1))
    assert name in admin.list_topics(timeout=10).topics


def test_kafka_python_fetch_session_sees_new_data_on_any_partition(broker, admin, topic_name):
    # kafka-python keeps an incremental fetch session (KIP-227): partitions
    # that had nothing must still be returned once data arrives for them.
    name = topic_name()
    ck_create_topics(admin, {name: 4})
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=200)
    try:
        tps = [KTopicPartition(name, p) for p in range(4)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = []

        def poll_for(n):
            deadline = time.monotonic() + T
            while len(got) < n and time.monotonic() < deadline:
                for recs in c.poll(timeout_ms=300).values():
                    got.extend((r.partition, r.offset, r.value) for r in recs)

        poll_for(0)
        assert c.poll(timeout_ms=600) == {}
        for step, partition in enumerate([2, 0, 3, 2, 1]):
            kp_produce(broker.bootstrap, name, [dict(partition=partition, key=None, value=b"s%d" % step)])
            poll_for(step + 1)
        assert sorted(got) == sorted([(2, 0, b"s0"), (0, 0, b"s1"), (3, 0, b"s2"), (2, 1, b"s3"), (1, 0, b"s4")])
    finally:
        c.close()


def test_concurrent_producers_on_one_partition(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    n = 500
    errors = []

    def run(fn, tag):
        try:
            fn(broker.bootstrap, name, [dict(partition=0, key=tag, value=b"%s-%d" % (tag, i), headers=[],
                                             timestamp=None) for i in range(n)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((tag, exc))

    threads = [threading.Thread(target=run, args=(fn, tag)) for fn, tag in
               [(ck_produce, b"ck1"), (ck_produce, b"ck2"), (kp_produce, b"kp1"), (kp_produce, b"kp2")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T * 2)
    assert not errors, errors
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["offset"] for r in got] == list(range(4 * n))
    for tag in (b"ck1", b"ck2", b"kp1", b"kp2"):
        # Each producer's records stay in its send order.
        assert [r["value"] for r in got if r["key"] == tag] == [b"%s-%d" % (tag, i) for i in range(n)]


def test_records_near_the_size_limits(broker, admin, topic_name):
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    big = blob(1_000_000, seed=3)  # under max.message.bytes (1048588) with its batch overhead
    many_headers = [(f"header-{i:03d}-" + "h" * 50, blob(100, seed=i)) for i in range(200)]
    records = [
        dict(partition=0, key=blob(32_768, seed=1), value=big, headers=[], timestamp=None),
        dict(partition=0, key=b"headers", value=b"v", headers=many_headers, timestamp=None),
    ]
    ck_produce(broker.bootstrap, name, records, **{"message.max.bytes": 2_000_000})
    for got in (ck_consume(broker.bootstrap, name, [0]), kp_consume(broker.bootstrap, name, [0])):
        assert [(r["key"], r["value"], r["headers"]) for r in got] == [
            (r["key"], r["value"], r["headers"]) for r in records]
