"""Transactions with confluent-kafka and kafka-python (issue 3 acceptance).

Committed transactions are visible to ``read_committed`` readers and aborted
ones are not (``read_uncommitted`` sees both); an open transaction holds
back ``read_committed`` readers until it ends; a consume-transform-produce
loop with ``send_offsets_to_transaction`` writes each input exactly once and
commits the group's offsets with the output; a second producer with the
same ``transactional.id`` fences the first.

"The end" of a topic for a reader is a sentinel record written to every
partition afterwards: a ``read_committed`` reader sees it only once the last
stable offset passed everything before it.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from clients import CLIENT_TIMEOUT_S, ck_admin, ck_conf, ck_create_topics, ck_produce

T = CLIENT_TIMEOUT_S


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(broker):
    return ck_admin(broker.bootstrap)


def append_sentinels(bootstrap: str, topic: str, partitions: int) -> bytes:
    token = f"__END__{uuid.uuid4().hex}".encode()
    ck_produce(bootstrap, topic, [dict(partition=p, key=None, value=token, headers=[], timestamp=None)
                                  for p in range(partitions)])
    return token


def read_until_sentinels(bootstrap: str, topic: str, partitions: int, token: bytes, isolation: str,
                         timeout: float = 60.0) -> dict[int, list[bytes]]:
    """Values per partition before the sentinel ``token`` (confluent consumer by assignment)."""
    c = Consumer(ck_conf(bootstrap, **{
        "group.id": unique("reader"), "enable.auto.commit": False, "isolation.level": isolation,
        "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100}))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        pending = set(range(partitions))
        out: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, (
                f"{isolation} reader of {topic}: no sentinel on {sorted(pending)} after {timeout}s "
                f"(read so far: {out})")
            m = c.poll(0.2)
            if m is None or m.error():
                assert m is None or m.error().code() == KafkaError._PARTITION_EOF, m.error()
                continue
            if m.value() == token:
                pending.discard(m.partition())
            elif m.partition() in pending and not m.value().startswith(b"__END__"):
                out[m.partition()].append(m.value())
        return out
    finally:
        c.close()


def txn_producer(bootstrap: str, txn_id: str, **conf) -> Producer:
    p = Producer(ck_conf(bootstrap, **{"transactional.id": txn_id, "linger.ms": 5, **conf}))
    p.init_transactions(T)
    return p


def test_commit_and_abort_visibility(broker, admin):
    topic = unique("txn-vis")
    ck_create_topics(admin, {topic: 2})
    p = txn_producer(broker.bootstrap, unique("vis"))
    committed: dict[int, list[bytes]] = {0: [], 1: []}
    everything: dict[int, list[bytes]] = {0: [], 1: []}
    for label, commit in (("c1", True), ("a1", False), ("c2", True)):
        p.begin_transaction()
        for i in range(6):
            value = f"{label}-{i}".encode()
            p.produce(topic, value=value, partition=i % 2)
            everything[i % 2].append(value)
            if commit:
                committed[i % 2].append(value)
        if commit:
            p.commit_transaction(T)
        else:
            assert p.flush(T) == 0
            p.abort_transaction(T)
    token = append_sentinels(broker.bootstrap, topic, 2)
    assert read_until_sentinels(broker.bootstrap, topic, 2, token, "read_committed") == committed
    assert read_until_sentinels(broker.bootstrap, topic, 2, token, "read_uncommitted") == everything


def test_open_transaction_holds_back_read_committed(broker, admin):
    topic = unique("txn-lso")
    ck_create_topics(admin, {topic: 1})
    p = txn_producer(broker.bootstrap, unique("lso"))
    p.begin_transaction()
    p.produce(topic, value=b"open", partition=0)
    assert p.flush(T) == 0
    token = append_sentinels(broker.bootstrap, topic, 1)
    # read_uncommitted reads past the open transaction at once ...
    assert read_until_sentinels(broker.bootstrap, topic, 1, token, "read_uncommitted") == {0: [b"open"]}
    # ... read_committed does not get past it ...
    with pytest.raises(AssertionError, match="no sentinel"):
        read_until_sentinels(broker.bootstrap, topic, 1, token, "read_committed", timeout=3)
    # ... until it is aborted.
    p.abort_transaction(T)
    assert read_until_sentinels(broker.bootstrap, topic, 1, token, "read_committed") == {0: []}


def test_consume_transform_produce_with_send_offsets(broker, admin):
    src, dst, group = unique("ctp-in"), unique("ctp-out"), unique("ctp-group")
    ck_create_topics(admin, {src: 3, dst: 3})
    inputs = [dict(partition=i % 3, key=None, value=f"in-{i:04}".encode(), headers=[], timestamp=None)
              for i in range(300)]
    ck_produce(broker.bootstrap, src, inputs)
    consumer = Consumer(ck_conf(broker.bootstrap, **{
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "session.timeout.ms": 10000}))
    producer = txn_producer(broker.bootstrap, unique("ctp"))
    try:
        consumer.subscribe([src])
        done = 0
        aborted_once = False
        deadline = time.monotonic() + 90
        while done < len(inputs):
            assert time.monotonic() < deadline, f"processed {done} of {len(inputs)}"
            msgs = consumer.consume(num_messages=50, timeout=0.5)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce(dst, value=b"out:" + m.value(), partition=m.partition())
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), T)
            if not aborted_once:
                # Abort the first batch and rewind: its outputs must never show.
                producer.abort_transaction(T)
                aborted_once = True
                for tp in consumer.assignment():
                    committed = consumer.committed([tp], timeout=T)[0].offset
                    consumer.seek(TopicPartition(tp.topic, tp.partition, committed if committed >= 0 else 0))
                continue
            producer.commit_transaction(T)
            done += len(msgs)
        positions = consumer.committed([TopicPartition(src, p) for p in range(3)], timeout=T)
        assert [tp.offset for tp in positions] == [100, 100, 100]
    finally:
        consumer.close()
    token = append_sentinels(broker.bootstrap, dst, 3)
    out = read_until_sentinels(broker.bootstrap, dst, 3, token, "read_committed")
    assert out == {p: [b"out:" + r["value"] for r in inputs if r["partition"] == p] for p in range(3)}


def test_zombie_producer_is_fenced(broker, admin):
    topic = unique("txn-zombie")
    ck_create_topics(admin, {topic: 2})
    txn_id = unique("zombie")
    zombie = txn_producer(broker.bootstrap, txn_id)
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-0", partition=0)
    assert zombie.flush(T) == 0
    fresh = txn_producer(broker.bootstrap, txn_id)
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh", partition=0)
    fresh.commit_transaction(T)
    zombie.produce(topic, value=b"zombie-1", partition=1)
    with pytest.raises(KafkaException) as exc:
        zombie.commit_transaction(T)
    err = exc.value.args[0]
    assert err.fatal(), f"expected a fatal error, got {err}"
    assert err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), err
    token = append_sentinels(broker.bootstrap, topic, 2)
    assert read_until_sentinels(broker.bootstrap, topic, 2, token, "read_committed") == {0: [b"fresh"], 1: []}


def test_kafka_python_transactions_read_by_both_clients(broker, admin):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP

    topic = unique("kp-txn")
    ck_create_topics(admin, {topic: 1})
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=unique("kp-txn"), max_block_ms=20000)
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"kp-committed", partition=0)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic, b"kp-aborted", partition=0)
        p.flush(timeout=T)
        p.abort_transaction()
    finally:
        p.close(timeout=10)
    token = append_sentinels(broker.bootstrap, topic, 1)
    assert read_until_sentinels(broker.bootstrap, topic, 1, token, "read_committed") == {0: [b"kp-committed"]}
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, isolation_level="read_committed",
                      auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        c.assign([KTP(topic, 0)])
        got = []
        deadline = time.monotonic() + 30
        while token not in got:
            assert time.monotonic() < deadline, f"kafka-python read_committed got {got}"
            for recs in c.poll(timeout_ms=200).values():
                got += [r.value for r in recs]
        assert got == [b"kp-committed", token]
    finally:
        c.close()
