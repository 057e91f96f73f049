"""Thin, bounded wrappers over the three clients under test.

Records are plain dicts so results from different clients compare with
``==``: ``partition``, ``offset``, ``timestamp`` (ms), ``key`` and ``value``
(``bytes`` or ``None`` for null) and ``headers`` (list of ``(str, bytes|None)``
in wire order).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

CLIENT_TIMEOUT_S = 30.0


def wait_until(predicate, timeout: float = CLIENT_TIMEOUT_S, interval: float = 0.1, what: str = "condition"):
    """Polls ``predicate`` until it returns a truthy value; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


def now_ms() -> int:
    return int(time.time() * 1000)


def by_partition(records: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in records:
        out.setdefault(r["partition"], []).append(r)
    return out


def strip(records: list[dict], *fields: str) -> list[dict]:
    """Records with only ``fields`` kept (for comparing what a client can set)."""
    return [{f: r[f] for f in fields} for r in records]


# ---------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# ---------------------------------------------------------------------------


def ck_conf(bootstrap: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    conf.update(extra)
    return conf


def ck_admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient(ck_conf(bootstrap))


def ck_create_topics(admin, topics: dict[str, int], configs: dict[str, dict] | None = None):
    """Creates ``{name: partitions}`` and waits for every future."""
    from confluent_kafka.admin import NewTopic

    new = [
        NewTopic(name, num_partitions=n, replication_factor=1, config=(configs or {}).get(name, {}))
        for name, n in topics.items()
    ]
    futures = admin.create_topics(new, operation_timeout=CLIENT_TIMEOUT_S, request_timeout=CLIENT_TIMEOUT_S)
    for name, fut in futures.items():
        fut.result(timeout=CLIENT_TIMEOUT_S)
    for name, n in topics.items():
        wait_until(lambda: ck_partition_count(admin, name) == n, what=f"metadata for {name}")


def ck_partition_count(admin, topic: str) -> int:
    md = admin.list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return -1
    if any(p.leader < 0 for p in t.partitions.values()):
        return -1
    return len(t.partitions)


def ck_produce(bootstrap: str, topic: str, records: list[dict], **conf) -> list[dict]:
    """Produces ``records`` in order (idempotence off); returns delivery reports."""
    from confluent_kafka import Producer

    p = Producer(ck_conf(bootstrap, **{"enable.idempotence": False, "acks": "all", "linger.ms": 5, **conf}))
    reports: list = [None] * len(records)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                reports[i] = {"partition": msg.partition(), "offset": msg.offset(), "timestamp": msg.timestamp()}

        return cb

    for i, r in enumerate(records):
        kwargs = {"value": r.get("value"), "key": r.get("key")}
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        if r.get("timestamp") is not None:
            kwargs["timestamp"] = r["timestamp"]
        if r.get("headers"):
            kwargs["headers"] = list(r["headers"])
        p.produce(topic, on_delivery=on_delivery(i), **kwargs)
        p.poll(0)
    remaining = p.flush(CLIENT_TIMEOUT_S)
    assert remaining == 0, f"{remaining} messages not delivered within {CLIENT_TIMEOUT_S}s"
    assert not errors, f"delivery errors: {errors}"
    return reports


def ck_consumer(bootstrap: str, **conf):
    from confluent_kafka import Consumer

    # group.id is required by the client but no group is joined: partitions
    # are assigned by hand and nothing is committed.
    return Consumer(
        ck_conf(
            bootstrap,
            **{
                "group.id": f"millrace-py-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                # Verify every fetched batch's CRC (kafka-python always does).
                "check.crcs": True,
                **conf,
            },
        )
    )


def ck_consume(bootstrap: str, topic: str, partitions, start=None, timeout: float = CLIENT_TIMEOUT_S,
               **conf) -> list[dict]:
    """Reads each partition from ``start`` (default beginning) up to its end."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    c = ck_consumer(bootstrap, **conf)
    try:
        start = OFFSET_BEGINNING if start is None else start
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        pending = set(partitions)
        out = []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"consume did not reach the end of {sorted(pending)} in {timeout}s"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            ts_type, ts = m.timestamp()
            out.append(
                {
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "timestamp": ts,
                    "timestamp_type": ts_type,
                    "key": m.key(),
                    "value": m.value(),
                    "headers": [(k, v) for k, v in (m.headers() or [])],
                }
            )
        return out
    finally:
        c.close()


def ck_watermarks(bootstrap: str, topic: str, partition: int) -> tuple[int, int]:
    from confluent_kafka import TopicPartition

    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


# ---------------------------------------------------------------------------
# kafka-python
# ---------------------------------------------------------------------------


def kp_admin(bootstrap: str, **conf):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000, **conf)


def kp_producer(bootstrap: str, **conf):
    from kafka import KafkaProducer

    # kafka-python 3 turns idempotence on by default (like the Java client);
    # Millrace has no InitProducerId yet, so it is switched off explicitly.
    conf = {"enable_idempotence": False, "acks": "all", "linger_ms": 5, **conf}
    return KafkaProducer(bootstrap_servers=bootstrap, **conf)


def kp_produce(bootstrap: str, topic: str, records: list[dict], **conf) -> list[dict]:
    p = kp_producer(bootstrap, **conf)
    try:
        futures = [
            p.send(
                topic,
                key=r.get("key"),
                value=r.get("value"),
                partition=r.get("partition"),
                timestamp_ms=r.get("timestamp"),
                headers=list(r.get("headers") or []),
            )
            for r in records
        ]
        p.flush(timeout=CLIENT_TIMEOUT_S)
        reports = []
        for f in futures:
            md = f.get(timeout=CLIENT_TIMEOUT_S)
            reports.append({"partition": md.partition, "offset": md.offset, "timestamp": md.timestamp})
        return reports
    finally:
        p.close(timeout=10)


def kp_consumer(bootstrap: str, **conf):
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=20000,
        **conf,
    )


def kp_consume(bootstrap: str, topic: str, partitions, start: int | None = None,
               timeout: float = CLIENT_TIMEOUT_S, **conf) -> list[dict]:
    from kafka import TopicPartition

    c = kp_consumer(bootstrap, **conf)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        if start is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, start)
        ends = c.end_offsets(tps, timeout_ms=int(timeout * 1000))
        out = []
        deadline = time.monotonic() + timeout
        # A position past the end is out of range: the next fetch resets it.
        while any(c.position(tp) != ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"consume did not reach {ends} in {timeout}s"
            for tp, recs in c.poll(timeout_ms=500).items():
                for r in recs:
                    out.append(
                        {
                            "partition": r.partition,
                            "offset": r.offset,
                            "timestamp": r.timestamp,
                            "timestamp_type": r.timestamp_type,
                            "key": r.key,
                            "value": r.value,
                            "headers": [(k, v) for k, v in (r.headers or [])],
                        }
                    )
        return out
    finally:
        c.close()


# ---------------------------------------------------------------------------
# kcat (librdkafka 2.0.2 on Debian)
# ---------------------------------------------------------------------------

KCAT = shutil.which("kcat") or shutil.which("kafkacat")

# Consumed records in a length-prefixed layout so keys and values of any bytes
# parse back exactly: partition, offset, timestamp, key length, value length
# (-1 for null), the key and value bytes, then the headers to the end of line.
KCAT_FORMAT = "%p\\t%o\\t%T\\t%K\\t%S\\t%k\\t%s\\t%h\\n"

# Produce delimiters: records are split on 0x1e and key/value on 0x1f, so
# values may hold any other byte (including NUL, newlines and tabs).
KCAT_MSG_DELIM = b"\x1e"
KCAT_KEY_DELIM = b"\x1f"


def kcat(args: list[str | bytes], input: bytes | None = None, timeout: float = CLIENT_TIMEOUT_S) -> bytes:
    if KCAT is None:
        pytest.fail("kcat is not installed (scripts/test.sh installs it with apt-get)")
    res = subprocess.run([KCAT, *args], input=b"" if input is None else input, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=timeout)
    assert res.returncode == 0, (
        f"kcat {args} exited with {res.returncode}:\n"
        f"stdout: {res.stdout[-2000:]!r}\nstderr: {res.stderr.decode(errors='replace')[-4000:]}"
    )
    return res.stdout


def parse_kcat_records(out: bytes, null_str: bytes | None = None) -> list[dict]:
    """Parses output of ``kcat -C -f KCAT_FORMAT``.

    kcat prints nothing (or ``null_str`` with ``-Z``) for an empty or null key
    or value; the ``%K``/``%S`` lengths (-1 for null) tell them apart. A null
    header value prints as ``NULL``; header values print as C strings (see
    ``kcat_header_view``).
    """
    records = []
    pos = 0

    def field(end_byte: bytes = b"\t") -> bytes:
        nonlocal pos
        end = out.index(end_byte, pos)
        value = out[pos:end]
        pos = end + 1
        return value

    def blob(length: int) -> bytes | None:
        nonlocal pos
        if length > 0:
            value = out[pos:pos + length]
            pos += length
        else:
            if null_str is not None and out.startswith(null_str, pos):
                pos += len(null_str)
            value = None if length < 0 else b""
        assert out[pos:pos + 1] == b"\t", f"kcat output out of step at byte {pos}: {out[pos - 40:pos + 40]!r}"
        pos += 1
        return value

    while pos < len(out):
        partition = int(field())
        offset = int(field())
        timestamp = int(field())
        key_len = int(field())
        value_len = int(field())
        key = blob(key_len)
        value = blob(value_len)
        raw_headers = field(b"\n")
        headers = []
        if raw_headers:
            for pair in raw_headers.split(b","):
                name, _, val = pair.partition(b"=")
                headers.append((name.decode(), None if val == b"NULL" else val))
        records.append(dict(partition=partition, offset=offset, timestamp=timestamp, key=key, value=value,
                            headers=headers))
    return records


def kcat_header_view(records: list[dict]) -> list[dict]:
    """``records`` as kcat's ``%h`` shows them: it prints header values as C
    strings, so a value ends at its first NUL byte (a kcat limitation; the
    other clients read such values whole)."""
    return [
        dict(r, headers=[(k, None if v is None else v.split(b"\0")[0]) for k, v in r["headers"]])
        for r in records
    ]


def kcat_consume(bootstrap: str, topic: str, partition: int | None = None, offset: str = "beginning",
                 extra: list[str] | None = None, null_str: bool = False) -> list[dict]:
    args = ["-b", bootstrap, "-C", "-t", topic, "-o", offset, "-e", "-q", "-m", "10", "-f", KCAT_FORMAT]
    if partition is not None:
        args += ["-p", str(partition)]
    if null_str:
        args.append("-Z")
    args += extra or []
    return parse_kcat_records(kcat(args), null_str=b"NULL" if null_str else None)


def kcat_produce(bootstrap: str, topic: str, partition: int, records: list[dict],
                 headers: list[tuple[str, bytes]] = (), extra: list[str] | None = None) -> None:
    """Produces ``records`` (key/value only) to one partition through stdin.

    kcat cannot set per-message headers or timestamps: ``headers`` go on
    every message and the timestamp is the producer's clock (CreateTime).
    A record without key delimiter has a null key; null values need ``-Z``
    (which then turns every empty key and value into null).
    """
    parts = []
    for r in records:
        key, value = r.get("key"), r.get("value")
        assert value is not None or "-Z" in (extra or []), "null values need -Z"
        for blob in (key, value):
            assert blob is None or (KCAT_MSG_DELIM not in blob and KCAT_KEY_DELIM not in blob)
        parts.append((b"" if key is None else key + KCAT_KEY_DELIM) + (value or b""))
    data = b"".join(p + KCAT_MSG_DELIM for p in parts)
    args = ["-b", bootstrap, "-P", "-t", topic, "-p", str(partition), "-D", "\\x1e", "-K", "\\x1f", "-m", "10"]
    for name, val in headers:
        assert b"\0" not in val, "kcat takes header values from argv: no NUL bytes"
        args += ["-H", name.encode() + b"=" + val]
    args += extra or []
    kcat(args, input=data)


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------


def blob(n: int, seed: int = 7) -> bytes:
    """``n`` deterministic pseudo-random bytes (every byte value occurs)."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += x.to_bytes(8, "little")
    return bytes(out[:n])


def sample_records(base_ts: int, partitions: int = 3, null_key_and_value: bool = True,
                   null_header_values: bool = True) -> list[dict]:
    """Records covering what users put in Kafka, spread over ``partitions``.

    Keys/values: text, non-UTF-8 binary, NUL/newline/tab bytes, empty and null
    (a tombstone), a 100 KiB value. Headers: repeated names kept in order,
    null and empty values, binary values. Timestamps: producer CreateTime,
    not monotonic within a partition. kafka-python refuses to send a record
    whose key and value are both null (``null_key_and_value=False`` leaves it
    out) or a null header value (``null_header_values=False`` drops those).
    """
    recs = [
        dict(partition=0, key=b"key-0", value=b"hello millrace", headers=[("h1", b"v1")], timestamp=base_ts),
        dict(partition=0, key=None, value=b"\x00\x01\x02\xff\xfe\x80binary\n\ttail", headers=[], timestamp=base_ts + 1),
        dict(partition=0, key=b"", value=b"", headers=[], timestamp=base_ts + 2),
        dict(partition=0, key=b"tombstone", value=None, headers=[("reason", b"deleted")], timestamp=base_ts + 3),
        dict(partition=0, key=None, value=None, headers=[("both", b"null")], timestamp=base_ts + 4),
        dict(partition=1, key=b"\xff\xfe\xfd\x00", value="h\u00e9llo w\u00f6rld \u2713".encode(),
             headers=[("dup", b"a"), ("dup", b"b"), ("null", None), ("empty", b""), ("bin", b"\x00\xff\x7f"),
                      ("dup", b"c")],
             timestamp=base_ts - 3_600_000),
        dict(partition=1, key=b"big", value=blob(100 * 1024), headers=[], timestamp=base_ts + 10),
        dict(partition=1, key=b"k", value=b"after big", headers=[("\u00fcnicode-name", b"x")], timestamp=base_ts + 5),
    ]
    for i in range(5):
        recs.append(dict(partition=2 % partitions, key=f"seq-{i}".encode(), value=f"value-{i}".encode(),
                         headers=[("i", str(i).encode())], timestamp=base_ts + 100 * i))
    if not null_header_values:
        for r in recs:
            r["headers"] = [(k, v) for k, v in r["headers"] if v is not None]
    if not null_key_and_value:
        recs = [r for r in recs if r["key"] is not None or r["value"] is not None]
    return [r for r in recs if r["partition"] < partitions]


def expected_records(records: list[dict], reports: list[dict] | None = None) -> list[dict]:
    """``records`` as a consumer returns them: with offsets, sorted by partition then offset."""
    out = []
    counters: dict[int, int] = {}
    for i, r in enumerate(records):
        offset = counters.get(r["partition"], 0)
        counters[r["partition"]] = offset + 1
        if reports is not None:
            assert reports[i]["partition"] == r["partition"], reports[i]
            assert reports[i]["offset"] == offset, (i, reports[i])
        out.append(dict(partition=r["partition"], offset=offset, timestamp=r["timestamp"], key=r["key"],
                        value=r["value"], headers=list(r["headers"])))
    return sorted(out, key=lambda x: (x["partition"], x["offset"]))


def comparable(records: list[dict]) -> list[dict]:
    """Consumed records sorted by partition/offset, without client-only fields."""
    fields = ("partition", "offset", "timestamp", "key", "value", "headers")
    return sorted(strip(records, *fields), key=lambda x: (x["partition"], x["offset"]))
