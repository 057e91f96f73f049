"""What clients wrote survives a clean broker restart (SIGTERM, start again
on the same data directory and port): records byte for byte, topic ids,
partition counts, topic configs and deleted-records boundaries."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

from clients import (
    CLIENT_TIMEOUT_S,
    ck_admin,
    ck_consume,
    ck_create_topics,
    ck_produce,
    ck_watermarks,
    comparable,
    expected_records,
    kcat_consume,
    kcat_header_view,
    kp_consume,
    kp_produce,
    now_ms,
    sample_records,
    wait_until,
)

T = CLIENT_TIMEOUT_S


def topic_ids(bootstrap: str, names: list[str]) -> dict[str, str]:
    from confluent_kafka import TopicCollection

    admin = ck_admin(bootstrap)
    futs = admin.describe_topics(TopicCollection(names), request_timeout=10)
    return {n: str(f.result(timeout=T).topic_id) for n, f in futs.items()}


def test_data_and_metadata_survive_a_restart(broker, topic_name):
    admin = ck_admin(broker.bootstrap)
    data, configured, trimmed = topic_name("data"), topic_name("cfg"), topic_name("trim")
    ck_create_topics(admin, {data: 3, configured: 2, trimmed: 1},
                     configs={configured: {"retention.ms": "3600000", "cleanup.policy": "compact"}})
    records = sample_records(now_ms() - 60_000)
    expected = expected_records(records, ck_produce(broker.bootstrap, data, records))
    ck_produce(broker.bootstrap, trimmed, [dict(partition=0, key=None, value=b"%d" % i, headers=[], timestamp=None)
                                          for i in range(10)])
    [fut] = admin.delete_records([TopicPartition(trimmed, 0, 7)], request_timeout=10).values()
    assert fut.result(timeout=T).low_watermark == 7
    ids = topic_ids(broker.bootstrap, [data, configured, trimmed])
    cluster_id = admin.list_topics(timeout=10).cluster_id
    del admin

    assert broker.stop() == 0, broker.output()
    broker.start()

    admin = ck_admin(broker.bootstrap)
    md = admin.list_topics(timeout=10)
    assert md.cluster_id == cluster_id
    assert {n: len(md.topics[n].partitions) for n in (data, configured, trimmed)} == {data: 3, configured: 2,
                                                                                      trimmed: 1}
    assert topic_ids(broker.bootstrap, [data, configured, trimmed]) == ids

    assert comparable(ck_consume(broker.bootstrap, data, [0, 1, 2])) == expected
    assert comparable(kp_consume(broker.bootstrap, data, [0, 1, 2])) == expected
    assert comparable(kcat_consume(broker.bootstrap, data)) == kcat_header_view(expected)

    resource = ConfigResource(ResourceType.TOPIC, configured)
    entries = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=T)
    assert (entries["retention.ms"].value, entries["retention.ms"].source) == (
        "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert entries["cleanup.policy"].value == "compact"

    assert ck_watermarks(broker.bootstrap, trimmed, 0) == (7, 10)
    assert [r["offset"] for r in ck_consume(broker.bootstrap, trimmed, [0])] == [7, 8, 9]

    # Appends continue after the restored end.
    reports = kp_produce(broker.bootstrap, data, [dict(partition=0, key=b"after", value=b"restart")])
    assert reports[0]["offset"] == len([r for r in records if r["partition"] == 0])


def test_deleted_topic_stays_deleted(broker, topic_name):
    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"gone", headers=[], timestamp=None)])
    admin.delete_topics([name], request_timeout=T)[name].result(timeout=T)
    wait_until(lambda: name not in admin.list_topics(timeout=10).topics, what="topic deleted")
    del admin

    assert broker.stop() == 0, broker.output()
    broker.start()

    admin = ck_admin(broker.bootstrap)
    assert name not in admin.list_topics(timeout=10).topics
    # Recreated under the same name, it starts empty.
    ck_create_topics(admin, {name: 1})
    assert ck_watermarks(broker.bootstrap, name, 0) == (0, 0)


def test_restart_after_sigkill_keeps_acknowledged_records(broker, topic_name):
    # A crash of the process (not the machine): acknowledged records are in
    # the OS page cache, and recovery must keep every one of them.
    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    ck_create_topics(admin, {name: 2})
    records = sample_records(now_ms(), partitions=2)
    expected = expected_records(records, ck_produce(broker.bootstrap, name, records))
    del admin

    broker.kill()
    broker.start()
    assert comparable(ck_consume(broker.bootstrap, name, [0, 1])) == expected


def test_sigterm_with_clients_connected(broker, topic_name):
    # A rolling restart: the broker stops cleanly while a consumer is
    # long-polling and a producer holds a connection, and both clients carry
    # on against the restarted broker.
    from clients import ck_consumer, kp_producer

    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    del admin
    consumer = ck_consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000})
    producer = kp_producer(broker.bootstrap, retries=20, retry_backoff_ms=200, request_timeout_ms=10000,
                           delivery_timeout_ms=60000)
    try:
        assert producer.send(name, b"before").get(timeout=T).offset == 0
        consumer.assign([TopicPartition(name, 0, 0)])
        got = []

        def poll_until(n):
            deadline = time.monotonic() + T
            while len(got) < n and time.monotonic() < deadline:
                m = consumer.poll(0.5)
                if m is not None and not m.error():
                    got.append(m.value())

        poll_until(1)
        assert got == [b"before"]
        consumer.poll(0.5)  # a long-poll fetch is now parked in the broker

        assert broker.stop() == 0, broker.output()
        broker.start()

        assert producer.send(name, b"after").get(timeout=T).offset == 1
        poll_until(2)
        assert got == [b"before", b"after"]
    finally:
        consumer.close()
        producer.close(timeout=10)
