"""auto.create.topics.enable=false (MSK's default): clients that name an
unknown topic get an error instead of creating it."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Producer
from kafka import errors as Errors

from clients import CLIENT_TIMEOUT_S, ck_admin, ck_conf, ck_create_topics, ck_produce, ck_consume, kcat, kp_producer

BROKER_OVERRIDES = {"auto.create.topics.enable": "false"}


def test_metadata_for_unknown_topic_is_an_error(broker, topic_name):
    name = topic_name()
    admin = ck_admin(broker.bootstrap)
    md = admin.list_topics(topic=name, timeout=10)
    assert md.topics[name].error is not None
    assert md.topics[name].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    md = admin.list_topics(timeout=10)
    assert name not in md.topics

    out = kcat(["-b", broker.bootstrap, "-L", "-t", name, "-m", "10"]).decode()
    assert "Broker: Unknown topic or partition" in out, out


def test_produce_to_unknown_topic_fails(broker, topic_name):
    name = topic_name()
    p = Producer(ck_conf(broker.bootstrap, **{"enable.idempotence": False, "message.timeout.ms": 5000,
                                              "topic.metadata.propagation.max.ms": 1000}))
    errors = []
    p.produce(name, value=b"v", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(CLIENT_TIMEOUT_S) == 0
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, errors[0]

    kp = kp_producer(broker.bootstrap, max_block_ms=3000)
    try:
        with pytest.raises(Errors.KafkaTimeoutError):
            kp.send(name, value=b"v").get(timeout=CLIENT_TIMEOUT_S)
    finally:
        kp.close(timeout=10)

    admin = ck_admin(broker.bootstrap)
    assert name not in admin.list_topics(timeout=10).topics

    # Created explicitly, it works.
    ck_create_topics(admin, {name: 1})
    ck_produce(broker.bootstrap, name, [dict(partition=0, key=None, value=b"ok", headers=[], timestamp=None)])
    assert [r["value"] for r in ck_consume(broker.bootstrap, name, [0])] == [b"ok"]
