"""Retention and compaction as clients see them: the log start offset moves
past expired data, and a compacted topic keeps the latest value per key.

The broker checks retention and runs the cleaner every few hundred ms here
(MSK's defaults are minutes), so the waits stay short; each is bounded.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from clients import (
    CLIENT_TIMEOUT_S,
    ck_admin,
    ck_consume,
    ck_create_topics,
    ck_produce,
    ck_watermarks,
    kcat_consume,
    kp_consume,
    now_ms,
    wait_until,
)

BROKER_OVERRIDES = {
    "log.retention.check.interval.ms": "300",
    "log.cleaner.backoff.ms": "200",
    "log.segment.delete.delay.ms": "0",
}

T = CLIENT_TIMEOUT_S
WAIT_S = 60.0


def record(key: bytes | None, value: bytes | None, ts: int | None = None, partition: int = 0) -> dict:
    return dict(partition=partition, key=key, value=value, headers=[], timestamp=ts)


def test_time_retention_moves_the_log_start(broker, topic_name):
    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    # Small segments so old records sit in closed segments.
    ck_create_topics(admin, {name: 1}, configs={name: {"segment.bytes": "2048", "retention.ms": "3600000",
                                                       "file.delete.delay.ms": "0"}})
    old = now_ms() - 6 * 3_600_000
    ck_produce(broker.bootstrap, name, [record(b"old-%d" % i, b"x" * 200, old + i) for i in range(40)],
               **{"linger.ms": 0, "batch.num.messages": 1})
    ck_produce(broker.bootstrap, name, [record(b"new-%d" % i, b"y" * 200) for i in range(5)],
               **{"linger.ms": 0, "batch.num.messages": 1})
    assert ck_watermarks(broker.bootstrap, name, 0) == (0, 45)

    # Whole segments go once every record in them is older than retention.ms:
    # the segment holding the last old records and the first new ones stays.
    low = wait_until(lambda: ck_watermarks(broker.bootstrap, name, 0)[0] or None, timeout=WAIT_S,
                     what="log start offset to move")
    assert 0 < low <= 40
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["offset"] for r in got] == list(range(low, 45))
    assert [r["key"] for r in got] == [b"old-%d" % i for i in range(low, 40)] + [b"new-%d" % i for i in range(5)]
    assert [r["offset"] for r in kp_consume(broker.bootstrap, name, [0])] == list(range(low, 45))


def test_size_retention(broker, topic_name):
    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    ck_create_topics(admin, {name: 1}, configs={name: {"segment.bytes": "2048", "file.delete.delay.ms": "0"}})
    ck_produce(broker.bootstrap, name, [record(None, b"%04d" % i + b"z" * 200) for i in range(60)],
               **{"linger.ms": 0, "batch.num.messages": 1})
    assert ck_watermarks(broker.bootstrap, name, 0) == (0, 60)

    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.bytes", "4096", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource], request_timeout=10)[resource].result(timeout=T)
    start = wait_until(lambda: ck_watermarks(broker.bootstrap, name, 0)[0] or None, timeout=WAIT_S,
                       what="log start offset to move")
    low, high = ck_watermarks(broker.bootstrap, name, 0)
    assert start > 0 and high == 60
    got = ck_consume(broker.bootstrap, name, [0])
    assert [r["offset"] for r in got] == list(range(low, 60))
    assert [r["value"][:4] for r in got] == [b"%04d" % i for i in range(low, 60)]
    # What is left fits in the retention bytes plus the active segment.
    assert sum(len(r["value"]) for r in got) < 4096 + 2048 + 2048


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_compaction_keeps_the_latest_value_per_key(broker, topic_name, codec):
    admin = ck_admin(broker.bootstrap)
    name = topic_name()
    ck_create_topics(admin, {name: 1}, configs={name: {
        "cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0", "file.delete.delay.ms": "0", "segment.ms": "100",
    }})
    latest: dict[bytes, bytes | None] = {}
    records = []
    for round_ in range(6):
        for k in range(10):
            key = b"key-%d" % k
            value = None if (k == 3 and round_ == 5) else b"v%d-" % round_ + b"p" * 100
            records.append(record(key, value))
            latest[key] = value
    ck_produce(broker.bootstrap, name, records, **{"linger.ms": 5, "batch.num.messages": 3,
                                                   "compression.type": codec})
    # The active segment is never cleaned: once segment.ms has passed, one
    # more record (a key of its own) rolls a new one and leaves every record
    # above in cleanable segments.
    time.sleep(0.3)
    ck_produce(broker.bootstrap, name, [record(b"marker", b"last")])
    total = len(records) + 1
    # The latest value of each key, in the order those were written; the
    # key-3 tombstone is removed too (delete.retention.ms=0).
    expected = [(k, v) for k, v in latest.items() if v is not None] + [(b"marker", b"last")]
    expected.sort(key=lambda kv: max(i for i, r in enumerate(records + [record(b"marker", b"last")])
                                     if r["key"] == kv[0]))

    def compacted():
        got = ck_consume(broker.bootstrap, name, [0])
        return got if [(r["key"], r["value"]) for r in got] == expected else None

    got = wait_until(compacted, timeout=WAIT_S, interval=0.5, what="compaction to keep the latest value per key")
    # Offsets are kept: the surviving records keep theirs.
    offsets = [r["offset"] for r in got]
    assert offsets == [max(i for i, r in enumerate(records) if r["key"] == k) for k, _ in expected[:-1]] + [total - 1]
    assert ck_watermarks(broker.bootstrap, name, 0)[1] == total
    # Every client reads the compacted log (with its offset gaps) the same way.
    strip = lambda rs: [(r["offset"], r["key"], r["value"]) for r in rs]  # noqa: E731
    assert strip(kp_consume(broker.bootstrap, name, [0])) == strip(got)
    assert strip(kcat_consume(broker.bootstrap, name, partition=0)) == strip(got)
    # A consumer positioned on a removed offset moves on to the next record.
    removed = next(o for o in range(total) if o not in offsets)
    after = ck_consume(broker.bootstrap, name, [0], start=removed)
    assert [r["offset"] for r in after] == [o for o in offsets if o > removed]
