"""Idempotent producers with confluent-kafka and kafka-python (issue 3
acceptance): confluent's ``enable.idempotence`` producer and kafka-python 3's
default producer (idempotent) write every record exactly once, in order per
partition. The first two tests were strict xfails in test_not_yet_built.py."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from clients import CLIENT_TIMEOUT_S, ck_admin, ck_conf, ck_consume, ck_create_topics, kp_consume

T = CLIENT_TIMEOUT_S


def test_confluent_idempotent_producer(broker, topic_name):
    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    p = Producer(ck_conf(broker.bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 10000}))
    try:
        ck_create_topics(admin, {name: 1})
        results = []
        try:
            p.produce(name, value=b"once", partition=0, on_delivery=lambda err, msg: results.append(err))
            assert p.flush(15) == 0
        except Exception as exc:  # librdkafka raises its fatal error from flush()
            pytest.fail(f"idempotent produce failed: {exc}")
        assert results == [None]
        assert [r["value"] for r in ck_consume(broker.bootstrap, name, [0])] == [b"once"]
    finally:
        admin = p = None


def test_kafka_python_default_producer(broker, topic_name):
    from kafka import KafkaProducer

    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    try:
        ck_create_topics(admin, {name: 1})
    finally:
        admin = None
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=10000)
    try:
        assert p.config["enable_idempotence"]
        p.send(name, b"default", partition=0).get(timeout=15)
    finally:
        p.close(timeout=5)
    assert [r["value"] for r in kp_consume(broker.bootstrap, name, [0])] == [b"default"]


def check_in_order(bootstrap: str, topic: str, sent: dict[int, list[bytes]], reports: dict[bytes, tuple]):
    got = ck_consume(bootstrap, topic, sorted(sent))
    by_partition: dict[int, list[bytes]] = {p: [] for p in sent}
    for r in sorted(got, key=lambda r: (r["partition"], r["offset"])):
        by_partition[r["partition"]].append(r["value"])
        assert reports[r["value"]] == (r["partition"], r["offset"]), r
    assert by_partition == sent


def test_confluent_idempotent_producer_many_records_in_order(broker, topic_name):
    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    try:
        ck_create_topics(admin, {name: 3})
    finally:
        admin = None
    p = Producer(ck_conf(broker.bootstrap, **{
        "enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 100,
        "max.in.flight.requests.per.connection": 5}))
    sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    reports: dict[bytes, tuple] = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports[msg.value()] = (msg.partition(), msg.offset())

    try:
        for i in range(3000):
            value = f"ck-idem-{i:05}".encode()
            sent[i % 3].append(value)
            p.produce(name, value=value, partition=i % 3, on_delivery=on_delivery)
            p.poll(0)
        assert p.flush(T) == 0
    finally:
        p = None
    assert not errors, errors[:5]
    check_in_order(broker.bootstrap, name, sent, reports)


def test_kafka_python_idempotent_producer_many_records_in_order(broker, topic_name):
    from kafka import KafkaProducer

    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    try:
        ck_create_topics(admin, {name: 3})
    finally:
        admin = None
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, linger_ms=2,
                      max_in_flight_requests_per_connection=5, max_block_ms=10000)
    sent: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    try:
        futures = []
        for i in range(2000):
            value = f"kp-idem-{i:05}".encode()
            sent[i % 3].append(value)
            futures.append((value, p.send(name, value, partition=i % 3)))
        p.flush(timeout=T)
        reports = {}
        for value, f in futures:
            md = f.get(timeout=T)
            reports[value] = (md.partition, md.offset)
    finally:
        p.close(timeout=10)
    check_in_order(broker.bootstrap, name, sent, reports)
