"""advertised.listeners: clients bootstrap on one address and then use the
host the broker advertises (here ``localhost`` instead of 127.0.0.1), as
MSK clients do with broker DNS names."""

from __future__ import annotations

from clients import ck_admin, ck_consume, ck_create_topics, ck_produce, kcat, kcat_consume, kp_admin, kp_consume

BROKER_OVERRIDES = {"advertised.listeners": "PLAINTEXT://localhost:{port}"}


def test_metadata_advertises_the_configured_host(broker, topic_name):
    admin = ck_admin(broker.bootstrap)
    md = admin.list_topics(timeout=10)
    assert [(b.id, b.host, b.port) for b in md.brokers.values()] == [(1, "localhost", broker.port)]
    kp = kp_admin(broker.bootstrap)
    try:
        cluster = kp.describe_cluster()
    finally:
        kp.close()
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, "localhost", broker.port)]
    out = kcat(["-b", broker.bootstrap, "-L", "-m", "10"]).decode()
    assert f"broker 1 at localhost:{broker.port}" in out

    # Clients follow the advertised address for produce and fetch.
    name = topic_name()
    ck_create_topics(admin, {name: 1})
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=b"k", value=b"v", headers=[], timestamp=None)])
    assert [r["value"] for r in ck_consume(broker.bootstrap, name, [0])] == [b"v"]
    assert [r["value"] for r in kp_consume(broker.bootstrap, name, [0])] == [b"v"]
    assert [r["value"] for r in kcat_consume(broker.bootstrap, name, partition=0)] == [b"v"]
