"""Debian's kcat (librdkafka 2.0.2) against a real Millrace broker.

kcat has no admin commands: topics here are created by producing to them
(auto.create.topics.enable=true, num.partitions=3 on this module's broker).
"""

from __future__ import annotations

import json
import re

import pytest

from clients import (
    blob,
    kcat,
    kcat_consume,
    kcat_produce,
    now_ms,
    wait_until,
)

BROKER_OVERRIDES = {"num.partitions": "3"}


def produce_lines(bootstrap: str, topic: str, lines: list[bytes], extra: list[str] = ()) -> None:
    kcat(["-b", bootstrap, "-P", "-t", topic, "-m", "10", *extra], input=b"".join(l + b"\n" for l in lines))


def metadata(bootstrap: str, topic: str | None = None) -> dict:
    args = ["-b", bootstrap, "-L", "-J", "-m", "10"]
    if topic:
        args += ["-t", topic]
    return json.loads(kcat(args))


def test_metadata_listing(broker, topic_name):
    out = kcat(["-b", broker.bootstrap, "-L", "-m", "10"]).decode()
    assert " 1 brokers:" in out
    assert f"broker 1 at 127.0.0.1:{broker.port} (controller)" in out

    name = topic_name()
    produce_lines(broker.bootstrap, name, [b"x"], ["-p", "0"])
    out = kcat(["-b", broker.bootstrap, "-L", "-t", name, "-m", "10"]).decode()
    assert f'topic "{name}" with 3 partitions:' in out
    for p in range(3):
        assert f"partition {p}, leader 1, replicas: 1, isrs: 1" in out

    md = metadata(broker.bootstrap, name)
    assert md["controllerid"] == 1
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    [t] = md["topics"]
    assert t["topic"] == name
    assert "error" not in t
    assert [(p["partition"], p["leader"], p["replicas"], p["isrs"]) for p in t["partitions"]] == [
        (p, 1, [{"id": 1}], [{"id": 1}]) for p in range(3)
    ]
    assert name in [t["topic"] for t in metadata(broker.bootstrap)["topics"]]


def test_produce_and_consume_exact_bytes(broker, topic_name):
    name = topic_name()
    headers = [("trace", b"abc-123"), ("dup", b"1"), ("dup", b"2"), ("empty", b"")]
    per_partition = {
        0: [
            dict(key=b"key-0", value=b"hello millrace"),
            dict(key=None, value=b"\x00\x01\x02\xff\xfe\x80 binary\n\ttail"),
            dict(key=b"", value=b"empty key"),
            dict(key=b"empty value", value=b""),
        ],
        1: [dict(key=b"\xff\xfe\xfd\x00", value="h\u00e9llo w\u00f6rld \u2713".encode())],
        2: [dict(key=f"seq-{i}".encode(), value=f"value-{i}".encode()) for i in range(5)],
    }
    before = now_ms()
    for p, recs in per_partition.items():
        kcat_produce(broker.bootstrap, name, p, recs, headers=headers)
    after = now_ms()

    got = kcat_consume(broker.bootstrap, name)
    got.sort(key=lambda r: (r["partition"], r["offset"]))
    expected = [
        dict(partition=p, offset=i, key=r["key"], value=r["value"], headers=headers)
        for p, recs in per_partition.items() for i, r in enumerate(recs)
    ]
    assert [{k: r[k] for k in ("partition", "offset", "key", "value", "headers")} for r in got] == expected
    # kcat stamps CreateTime from its own clock.
    for r in got:
        assert before - 1000 <= r["timestamp"] <= after + 1000, r

    # Per-partition consume agrees.
    assert kcat_consume(broker.bootstrap, name, partition=2) == [r for r in got if r["partition"] == 2]


def test_json_envelope(broker, topic_name):
    name = topic_name()
    kcat_produce(broker.bootstrap, name, 1, [dict(key=b"k1", value=b"v1")], headers=[("h", b"x")])
    lines = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-e", "-q", "-J", "-m", "10"]).splitlines()
    [rec] = [json.loads(line) for line in lines]
    assert (rec["topic"], rec["partition"], rec["offset"]) == (name, 1, 0)
    assert (rec["key"], rec["payload"], rec["headers"]) == ("k1", "v1", ["h", "x"])
    assert rec["tstype"] == "create"
    assert rec["broker"] == 1


def test_null_and_empty(broker, topic_name):
    name = topic_name()
    # -Z sends empty values (and keys) as null; kcat skips wholly empty input.
    kcat_produce(broker.bootstrap, name, 0, [dict(key=b"tomb", value=None), dict(key=b"", value=None)],
                 extra=["-Z"])
    kcat_produce(broker.bootstrap, name, 0, [dict(key=b"", value=b""), dict(key=b"k", value=b"v")])

    got = kcat_consume(broker.bootstrap, name, partition=0)
    assert [(r["key"], r["value"]) for r in got] == [(b"tomb", None), (None, None), (b"", b""), (b"k", b"v")]

    # -Z prints NULL for null keys and values; %K/%S print -1 for null.
    out = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-p", "0", "-e", "-q", "-Z", "-m", "10",
                "-f", "%K:%k|%S:%s\\n"])
    lines = out.splitlines()
    assert lines[0] == b"4:tomb|-1:NULL"
    assert lines[1] == b"-1:NULL|-1:NULL"
    assert lines[3] == b"1:k|1:v"
    # Without -Z a null prints as nothing.
    out = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-p", "0", "-e", "-q", "-m", "10",
                "-f", "%K:%k|%S:%s\\n"])
    assert out.splitlines()[:3] == [b"4:tomb|-1:", b"-1:|-1:", b"0:|0:"]


def test_whole_files_as_binary_messages(broker, topic_name, tmp_path):
    name = topic_name()
    files = {
        "all-bytes": bytes(range(256)) * 4,
        "large": blob(512 * 1024),
        "delims": b"\n\x1e\x1f\t\r\n",
    }
    paths = []
    for fname, data in files.items():
        path = tmp_path / fname
        path.write_bytes(data)
        paths.append(str(path))
    kcat(["-b", broker.bootstrap, "-P", "-t", name, "-p", "1", "-m", "10", *paths])
    got = kcat_consume(broker.bootstrap, name, partition=1)
    assert [r["value"] for r in got] == list(files.values())
    assert [r["key"] for r in got] == [None] * 3


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches(broker, topic_name, codec):
    name = topic_name()
    values = [(b"compressible %d " % i) * 40 for i in range(300)]
    produce_lines(broker.bootstrap, name, values, ["-p", "0", "-X", f"compression.codec={codec}",
                                                   "-X", "linger.ms=50"])
    got = kcat_consume(broker.bootstrap, name, partition=0)
    assert [r["value"] for r in got] == values
    assert [r["offset"] for r in got] == list(range(300))
    # Start in the middle of a compressed batch.
    got = kcat_consume(broker.bootstrap, name, partition=0, offset="151")
    assert [r["offset"] for r in got] == list(range(151, 300))
    assert [r["value"] for r in got] == values[151:]


def test_consume_offsets_and_counts(broker, topic_name):
    name = topic_name()
    produce_lines(broker.bootstrap, name, [f"m{i}".encode() for i in range(20)], ["-p", "2"])

    def offsets(*args: str) -> list[int]:
        out = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-p", "2", "-q", "-m", "10", "-f", "%o\\n", *args])
        return [int(x) for x in out.split()]

    assert offsets("-o", "beginning", "-e") == list(range(20))
    assert offsets("-o", "12", "-e") == list(range(12, 20))
    assert offsets("-o", "-5", "-e") == list(range(15, 20))
    assert offsets("-o", "3", "-c", "4") == [3, 4, 5, 6]
    assert offsets("-o", "end", "-e") == []


def test_query_offsets_by_timestamp(broker, topic_name):
    name = topic_name()
    # kcat cannot set timestamps: produce in two rounds and use the stamps it got.
    produce_lines(broker.bootstrap, name, [b"first-%d" % i for i in range(3)], ["-p", "0"])
    first = kcat_consume(broker.bootstrap, name, partition=0)
    wait_until(lambda: now_ms() > first[-1]["timestamp"] + 5, what="clock to move on")
    produce_lines(broker.bootstrap, name, [b"second-%d" % i for i in range(3)], ["-p", "0"])
    recs = kcat_consume(broker.bootstrap, name, partition=0)
    assert [r["value"] for r in recs] == [b"first-0", b"first-1", b"first-2", b"second-0", b"second-1", b"second-2"]
    stamps = [r["timestamp"] for r in recs]

    def query(ts: int) -> int:
        out = kcat(["-b", broker.bootstrap, "-Q", "-t", f"{name}:0:{ts}", "-m", "10"]).decode()
        m = re.fullmatch(rf"{re.escape(name)} \[0\] offset (-?\d+)\s*", out)
        assert m, out
        return int(m.group(1))

    def first_at_or_after(ts: int) -> int:
        return next((i for i, s in enumerate(stamps) if s >= ts), -1)

    for ts in (stamps[0], stamps[3], stamps[3] - 1, stamps[-1], stamps[-1] + 1, 0):
        assert query(ts) == first_at_or_after(ts), ts
    assert query(-2) == 0  # earliest
    assert query(-1) == 6  # latest

    # Start consuming at a timestamp, and stop at one.
    out = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-p", "0", "-e", "-q", "-m", "10",
                "-o", f"s@{stamps[3]}", "-f", "%o\\n"])
    assert [int(x) for x in out.split()] == list(range(first_at_or_after(stamps[3]), 6))
    out = kcat(["-b", broker.bootstrap, "-C", "-t", name, "-p", "0", "-q", "-m", "10",
                "-o", "beginning", "-o", f"e@{stamps[3]}", "-f", "%o\\n"])
    assert [int(x) for x in out.split()] == list(range(0, first_at_or_after(stamps[3])))
