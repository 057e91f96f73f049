"""Drives an older kafka-python (2.x, still widely deployed) against a broker.

Run by test_kafka_python_legacy.py in a subprocess whose PYTHONPATH puts
that kafka-python first: ``python kafka_python_check.py BOOTSTRAP TOPIC``.
kafka-python 2.x infers the broker version from the ApiVersions response
(api_version=None) and picks request versions from that inference, so the
check starts there. Exits non-zero (an AssertionError) on any mismatch.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/python, after the legacy kafka

import kafka  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic  # noqa: E402

from clients import comparable, expected_records, now_ms, sample_records  # noqa: E402

TIMEOUT_S = 30


def main(bootstrap: str, topic: str) -> None:
    print(f"kafka-python {kafka.__version__} from {Path(kafka.__file__).parent}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    inferred = admin.config["api_version"]
    print(f"inferred broker version: {inferred}")
    assert inferred is not None and tuple(inferred) >= (2, 4), inferred

    admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})])
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        md = admin.describe_topics([topic]) if hasattr(admin, "describe_topics") else None
        if md is None or (md and md[0]["error_code"] == 0 and len(md[0]["partitions"]) == 3):
            break
        assert time.monotonic() < deadline, md
        time.sleep(0.1)

    cluster = admin.describe_cluster()
    assert cluster["controller_id"] == 1, cluster
    assert [b["node_id"] if "node_id" in b else b["broker_id"] for b in cluster["brokers"]] == [1], cluster

    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    [described] = admin.describe_configs([resource])
    entries = {e[0]: e[1] for e in described.resources[0][4]}
    assert entries["retention.ms"] == "3600000", entries
    assert entries["cleanup.policy"] == "delete", entries
    altered = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"retention.ms": "7200000"})])
    if isinstance(altered, list):  # one response per broker in 2.1+
        [altered] = altered
    assert [r[0] for r in altered.resources] == [0], altered
    [described] = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})])
    assert {e[0]: e[1] for e in described.resources[0][4]} == {"retention.ms": "7200000"}, described

    # Produce with the inferred request versions: kafka-python 2.x cannot
    # send a null header value or a record whose key and value are both null.
    records = sample_records(now_ms() - 60_000, null_key_and_value=False, null_header_values=False)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    print(f"producer api_version {producer.config['api_version']}")
    futures = [producer.send(topic, key=r["key"], value=r["value"], partition=r["partition"],
                             timestamp_ms=r["timestamp"], headers=r["headers"]) for r in records]
    producer.flush(timeout=TIMEOUT_S)
    reports = []
    for f in futures:
        md = f.get(timeout=TIMEOUT_S)
        reports.append({"partition": md.partition, "offset": md.offset, "timestamp": md.timestamp})
    producer.close(timeout=10)
    expected = expected_records(records, reports)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while any(consumer.position(tp) != ends[tp] for tp in tps):
        assert time.monotonic() < deadline, f"consume did not reach {ends}"
        for recs in consumer.poll(timeout_ms=500).values():
            got += [dict(partition=r.partition, offset=r.offset, timestamp=r.timestamp, key=r.key,
                         value=r.value, headers=list(r.headers)) for r in recs]
    assert comparable(got) == expected, (comparable(got), expected)

    p0 = TopicPartition(topic, 0)
    first = [r for r in expected if r["partition"] == 0]
    assert consumer.beginning_offsets([p0]) == {p0: 0}
    assert consumer.end_offsets([p0]) == {p0: len(first)}
    found = consumer.offsets_for_times({p0: first[1]["timestamp"]})[p0]
    assert (found.offset, found.timestamp) == (1, first[1]["timestamp"]), found
    consumer.close()

    if hasattr(admin, "delete_records"):
        res = admin.delete_records({p0: 2})
        assert res[p0]["low_watermark"] == 2, res
    else:
        print(f"kafka-python {kafka.__version__} has no delete_records: not checked")

    admin.create_partitions({topic: NewPartitions(4)})
    admin.delete_topics([topic])
    admin.close()
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
