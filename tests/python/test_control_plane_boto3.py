"""The MSK control plane through boto3, end to end.

``millrace up --no-dev-cluster`` runs on a free port with a throw-away data
directory; its printed ``export`` lines (endpoint, region, credentials) are
all the test is told. With ``boto3.client("kafka", ...)`` it then creates a
3-broker cluster from the guide's JSON shape, waits for ACTIVE, produces and
consumes 100 records with confluent-kafka through ``BootstrapBrokerString``,
lists clusters with a paginator, tags, makes a configuration with two
revisions, rolls the cluster onto it and follows the operation with
DescribeClusterOperation, checks the errors botocore raises for an unknown
cluster and for a wrong secret key, and deletes the clusters.

``millrace up`` is stopped with SIGTERM (which stops its brokers) when the
module is done, pass or fail; brokers still running after that are killed
by the pids in their pid files.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from confluent_kafka.admin import AdminClient, NewTopic

from clients import ck_consume, ck_produce, wait_until
from conftest import free_port, millrace_bin

# Bounds of every wait in this module.
UP_TIMEOUT_S = 60.0
CLUSTER_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0

SUBNETS = ["subnet-00000000000000001", "subnet-00000000000000002", "subnet-00000000000000003"]


class MillraceUp:
    """A ``millrace up --no-dev-cluster`` process and what it printed."""

    def __init__(self):
        self.data = Path(tempfile.mkdtemp(prefix="millrace-up-"))
        self.port = free_port()
        self.log_path = self.data / "up.log"
        self.exports: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("MILLRACE_LOG", "info")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(millrace_bin()),
                    "up",
                    "--no-dev-cluster",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--data-dir",
                    str(self.data / "state"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
            )
        # A thread reads stdout to its end (so the pipe never fills) and
        # hands over each line; the export lines come together once the API
        # listens.
        lines: queue.Queue = queue.Queue()

        def pump(stdout):
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + UP_TIMEOUT_S
        while "AWS_SECRET_ACCESS_KEY" not in self.exports:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"millrace up printed no exports in {UP_TIMEOUT_S}s:\n{self.output()}") from None
            if line is None:
                raise RuntimeError(
                    f"millrace up exited with {self.proc.wait()} before printing its exports:\n{self.output()}"
                )
            m = re.fullmatch(r"export ([A-Z_]+)=(\S+)", line.strip())
            if m:
                self.exports[m.group(1)] = m.group(2)

    def client(self, secret: str | None = None):
        return boto3.client(
            "kafka",
            endpoint_url=self.exports["AWS_ENDPOINT_URL"],
            region_name=self.exports["AWS_REGION"],
            aws_access_key_id=self.exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret or self.exports["AWS_SECRET_ACCESS_KEY"],
            config=Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 1}),
        )

    def broker_pids(self) -> list[int]:
        pids = []
        for f in (self.data / "state" / "clusters").glob("*/broker-*/broker.pid"):
            try:
                pids.append(int(f.read_text().strip()))
            except (OSError, ValueError):
                pass
        return pids

    def stop(self) -> int | None:
        """SIGTERM (brokers stop with it), then wait; SIGKILL after a timeout."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        return code

    def cleanup(self) -> None:
        self.stop()
        # Brokers run in their own process groups: any left behind (millrace
        # up killed, or stuck) are ended by their own pids.
        for pid in self.broker_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="module")
def up(request):
    u = MillraceUp()
    failed_before = request.session.testsfailed
    try:
        u.start()
        yield u
        assert u.proc is not None and u.proc.poll() is None, f"millrace up died:\n{u.output()}"
        code = u.stop()
        assert code == 0, f"millrace up exited with {code} after SIGTERM:\n{u.output()}"
    except BaseException:
        failed_before = -1
        raise
    finally:
        if request.session.testsfailed != failed_before:
            tail = "\n".join(u.output().splitlines()[-200:])
            print(f"--- millrace up output (last 200 lines) ---\n{tail}")
        u.cleanup()


def error_of(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def wait_state(kafka, arn: str, want: str, timeout: float = CLUSTER_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]
        if info["State"] == want:
            return info
        assert info["State"] != "FAILED", f"cluster FAILED: {info.get('StateInfo')}"
        assert time.monotonic() < deadline, f"cluster still {info['State']}, not {want}, after {timeout}s"
        time.sleep(0.5)


def test_exports_point_boto3_at_the_control_plane(up):
    assert up.exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{up.port}"
    assert up.exports["AWS_DEFAULT_REGION"] == up.exports["AWS_REGION"]
    assert up.client().list_clusters_v2()["ClusterInfoList"] == []


def test_an_unknown_cluster_is_not_found(up):
    kafka = up.client()
    arn = f"arn:aws:kafka:{up.exports['AWS_REGION']}:123456789012:cluster/nope/{uuid.uuid4()}-1"
    with pytest.raises(ClientError) as excinfo:
        kafka.describe_cluster(ClusterArn=arn)
    assert error_of(excinfo) == ("NotFoundException", 404)
    # A malformed request is a BadRequestException, and nothing is made.
    with pytest.raises(ClientError) as excinfo:
        kafka.create_cluster(
            ClusterName="bad",
            KafkaVersion="3.5.1",
            NumberOfBrokerNodes=4,  # not a multiple of the three subnets
            BrokerNodeGroupInfo={"InstanceType": "kafka.m5.large", "ClientSubnets": SUBNETS},
        )
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert kafka.list_clusters_v2()["ClusterInfoList"] == []


def test_a_wrong_secret_key_is_refused(up):
    kafka = up.client(secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGWRONG")
    with pytest.raises(ClientError) as excinfo:
        kafka.list_clusters_v2()
    assert error_of(excinfo) == ("InvalidSignatureException", 403)


@pytest.mark.timeout(900)
def test_cluster_life_with_boto3(up):
    kafka = up.client()
    started = time.monotonic()

    # CreateCluster in the shape of the guide's brokernodegroupinfo.json.
    created = kafka.create_cluster(
        ClusterName="boto3-cluster",
        KafkaVersion="3.5.1",
        NumberOfBrokerNodes=3,
        BrokerNodeGroupInfo={
            "InstanceType": "kafka.m5.large",
            "ClientSubnets": SUBNETS,
            "SecurityGroups": ["sg-0123456789abcdef0"],
            "StorageInfo": {"EbsStorageInfo": {"VolumeSize": 100}},
        },
        EncryptionInfo={"EncryptionInTransit": {"ClientBroker": "PLAINTEXT", "InCluster": True}},
        Tags={"Owner": "boto3-test"},
    )
    arn = created["ClusterArn"]
    assert created["ClusterName"] == "boto3-cluster"
    assert created["State"] == "CREATING"
    # A second, smaller cluster, so that listing has two pages of one.
    small = kafka.create_cluster(
        ClusterName="boto3-small",
        KafkaVersion="3.5.1",
        NumberOfBrokerNodes=2,
        BrokerNodeGroupInfo={"InstanceType": "kafka.t3.small", "ClientSubnets": SUBNETS[:2]},
    )["ClusterArn"]

    info = wait_state(kafka, arn, "ACTIVE")
    print(f"create_cluster → ACTIVE in {time.monotonic() - started:.1f}s")
    assert info["NumberOfBrokerNodes"] == 3
    assert info["BrokerNodeGroupInfo"]["InstanceType"] == "kafka.m5.large"
    assert info["BrokerNodeGroupInfo"]["StorageInfo"]["EbsStorageInfo"]["VolumeSize"] == 100
    assert info["CurrentBrokerSoftwareInfo"]["KafkaVersion"] == "3.5.1"
    wait_state(kafka, small, "ACTIVE")

    # Kafka through the bootstrap string: 100 records out and back.
    bootstrap = kafka.get_bootstrap_brokers(ClusterArn=arn)["BootstrapBrokerString"]
    assert len(bootstrap.split(",")) == 3
    topic = f"boto3-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)],
                                   operation_timeout=30, request_timeout=30).values():
        fut.result(timeout=30)
    wait_until(lambda: topic in admin.list_topics(topic=topic, timeout=10).topics
               and admin.list_topics(topic=topic, timeout=10).topics[topic].error is None,
               what=f"metadata for {topic}")
    values = [f"record-{i}".encode() for i in range(100)]
    reports = ck_produce(bootstrap, topic, [{"value": v} for v in values])
    assert [r["offset"] for r in reports] == list(range(100))
    read = ck_consume(bootstrap, topic, [0])
    assert [r["value"] for r in read] == values

    # ListClustersV2 through a paginator, one cluster a page.
    pages = list(kafka.get_paginator("list_clusters_v2").paginate(PaginationConfig={"PageSize": 1}))
    listed = [c["ClusterArn"] for p in pages for c in p["ClusterInfoList"]]
    assert [len(p["ClusterInfoList"]) for p in pages] == [1, 1]
    assert "NextToken" in pages[0]
    assert sorted(listed) == sorted([arn, small])
    # The classic ListClusters agrees.
    assert sorted(c["ClusterArn"] for c in kafka.list_clusters()["ClusterInfoList"]) == sorted([arn, small])

    # Tags.
    assert kafka.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"Owner": "boto3-test"}
    kafka.tag_resource(ResourceArn=arn, Tags={"Team": "streaming", "Env": "test"})
    assert kafka.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "Owner": "boto3-test",
        "Team": "streaming",
        "Env": "test",
    }
    kafka.untag_resource(ResourceArn=arn, TagKeys=["Owner", "Env"])
    assert kafka.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"Team": "streaming"}

    # A configuration with two revisions.
    props1 = b"auto.create.topics.enable = true\nlog.roll.ms = 604800000\n"
    config = kafka.create_configuration(
        Name=f"boto3-config-{uuid.uuid4().hex[:6]}",
        Description="first",
        KafkaVersions=["3.5.1"],
        ServerProperties=props1,
    )
    config_arn = config["Arn"]
    assert config["LatestRevision"]["Revision"] == 1
    props2 = b"auto.create.topics.enable = true\nnum.partitions = 3\n"
    updated = kafka.update_configuration(Arn=config_arn, Description="second", ServerProperties=props2)
    assert updated["LatestRevision"]["Revision"] == 2
    revisions = kafka.list_configuration_revisions(Arn=config_arn)["Revisions"]
    assert [r["Revision"] for r in revisions] == [1, 2]
    assert [r["Description"] for r in revisions] == ["first", "second"]
    rev2 = kafka.describe_configuration_revision(Arn=config_arn, Revision=2)
    assert rev2["ServerProperties"] == props2

    # UpdateClusterConfiguration onto revision 2, followed with
    # DescribeClusterOperation until it ends.
    version = kafka.describe_cluster(ClusterArn=arn)["ClusterInfo"]["CurrentVersion"]
    op_arn = kafka.update_cluster_configuration(
        ClusterArn=arn,
        ConfigurationInfo={"Arn": config_arn, "Revision": 2},
        CurrentVersion=version,
    )["ClusterOperationArn"]
    op_started = time.monotonic()
    deadline = op_started + CLUSTER_TIMEOUT_S
    while True:
        op = kafka.describe_cluster_operation(ClusterOperationArn=op_arn)["ClusterOperationInfo"]
        if "EndTime" in op:
            break
        assert time.monotonic() < deadline, f"operation still {op['OperationState']} after {CLUSTER_TIMEOUT_S}s"
        time.sleep(0.5)
    print(f"update_cluster_configuration: {op['OperationState']} in {time.monotonic() - op_started:.1f}s")
    assert op["OperationState"] == "UPDATE_COMPLETE", op
    assert op["OperationType"] == "UPDATE_CLUSTER_CONFIGURATION"
    assert op["ClusterArn"] == arn
    assert op["TargetClusterInfo"]["ConfigurationInfo"] == {"Arn": config_arn, "Revision": 2}
    assert all(s["StepInfo"]["StepStatus"] == "COMPLETED" for s in op["OperationSteps"])
    info = wait_state(kafka, arn, "ACTIVE")
    assert info["CurrentVersion"] != version
    assert info["CurrentBrokerSoftwareInfo"]["ConfigurationRevision"] == 2
    # The records are still there after the rolling restart.
    assert [r["value"] for r in ck_consume(bootstrap, topic, [0])] == values
    # The old version is stale now.
    with pytest.raises(ClientError) as excinfo:
        kafka.update_monitoring(ClusterArn=arn, CurrentVersion=version, EnhancedMonitoring="PER_BROKER")
    assert error_of(excinfo) == ("BadRequestException", 400)

    # DeleteCluster: both go, and listing no longer shows them.
    for a in (arn, small):
        deleted = kafka.delete_cluster(ClusterArn=a)
        assert deleted["ClusterArn"] == a
        assert deleted["State"] == "DELETING"
    wait_until(lambda: kafka.list_clusters()["ClusterInfoList"] == [], timeout=CLUSTER_TIMEOUT_S,
               interval=0.5, what="the clusters to be gone")
    with pytest.raises(ClientError) as excinfo:
        kafka.describe_cluster(ClusterArn=arn)
    assert error_of(excinfo) == ("NotFoundException", 404)
    # Their brokers are stopped (pid files, if any are left, name no live process).
    assert [p for p in up.broker_pids() if Path(f"/proc/{p}").exists()] == []
    print(f"whole life in {time.monotonic() - started:.1f}s")
