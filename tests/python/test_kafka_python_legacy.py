"""Older kafka-python releases (2.0.2, the long-lived release most
deployments still pin, and 2.3.3, the last 2.x) against a real broker.

Each runs legacy/kafka_python_check.py in a subprocess with that release
first on PYTHONPATH (installed by scripts/test.sh under .venv/legacy/):
broker-version inference from ApiVersions, admin (create topics, describe
cluster, describe/alter configs, delete records where the release has it,
create partitions, delete topics), exact-bytes produce/consume, list offsets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
LEGACY_DIR = Path(os.environ.get("MILLRACE_LEGACY_CLIENTS", REPO_ROOT / ".venv" / "legacy"))


def legacy_requirements() -> list[str]:
    lines = (HERE / "requirements-legacy.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("requirement", legacy_requirements())
def test_legacy_kafka_python(broker, topic_name, requirement):
    name, version = requirement.split("==")
    target = LEGACY_DIR / f"{name}-{version}"
    if not (target / "kafka" / "__init__.py").exists():
        pytest.fail(f"{requirement} not installed in {target}: run scripts/test.sh, or "
                    f"{sys.executable} -m pip install --target {target} {requirement}")
    env = dict(os.environ, PYTHONPATH=str(target))
    res = subprocess.run(
        [sys.executable, str(HERE / "legacy" / "kafka_python_check.py"), broker.bootstrap, topic_name()],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=150,
    )
    out = res.stdout.decode(errors="replace")
    print(out)
    assert res.returncode == 0, out
    assert f"kafka-python {version} from {target}" in out
    assert out.rstrip().endswith("ok")
