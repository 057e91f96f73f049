#!/usr/bin/env bash
# Runs Millrace's whole test suite from a fresh clone on a fresh Debian
# machine, installing what it needs, and safe to run again:
#
#   1. kcat (Debian package) if it is missing
#   2. a Python virtualenv at .venv with tests/python/requirements.txt
#      (the Kafka clients, pytest, and the AWS CLI the control plane is
#      tested with)
#   3. cargo build -p millrace (debug): the binary the black-box suites run
#   4. cargo fmt --check, cargo clippy -D warnings
#   5. cargo nextest run --workspace (cargo test --workspace without nextest)
#   6. pytest tests/python (client compatibility: confluent-kafka,
#      kafka-python, kcat against a real broker)
#
# Setup stages (1-3) stop the run when they fail; the check stages (4-6) all
# run and the script exits non-zero if any failed. Prints the time each
# stage took and a summary at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
LEGACY_REQUIREMENTS="$ROOT/tests/python/requirements-legacy.txt"
export MILLRACE_BIN="${MILLRACE_BIN:-$ROOT/target/debug/millrace}"
# The control-plane suites drive the real AWS CLI and botocore from the venv.
export MILLRACE_AWS_CLI="${MILLRACE_AWS_CLI:-$VENV/bin/aws}"
export MILLRACE_PYTHON="${MILLRACE_PYTHON:-$VENV/bin/python}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

RUN_START=$(date +%s)
SUMMARY=()
FAILED=0

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

print_summary() {
    echo
    echo "==================== summary ===================="
    local line
    for line in "${SUMMARY[@]}"; do
        echo "$line"
    done
    echo "total: $(fmt_secs $(($(date +%s) - RUN_START)))"
    echo "================================================="
}

# stage KIND NAME COMMAND...: runs COMMAND with errexit in a subshell and
# records its time. KIND is "setup" (a failure ends the run) or "check" (a
# failure is recorded and the run goes on).
stage() {
    local kind=$1 name=$2 rc
    shift 2
    echo
    echo "=== $name"
    local t0
    t0=$(date +%s)
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    local took=$(($(date +%s) - t0))
    local status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        FAILED=1
    fi
    echo "=== $name: $status in $(fmt_secs "$took")"
    SUMMARY+=("$(printf '%-34s %-16s %s' "$name" "$status" "$(fmt_secs "$took")")")
    if [ "$rc" -ne 0 ] && [ "$kind" = setup ]; then
        print_summary
        exit "$rc"
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

install_system_packages() {
    local missing=()
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    kcat -V | sed -n 4p
}

setup_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want="$(cat "$REQUIREMENTS" "$LEGACY_REQUIREMENTS" | sha256sum | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$VENV/bin/python" -c 'import confluent_kafka, kafka, pytest, botocore, boto3' >/dev/null 2>&1; then
        echo "$VENV is up to date"
    else
        if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
            rm -rf "$VENV"
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
        # Older client releases, each in its own directory (put first on
        # PYTHONPATH by the tests that use them).
        rm -rf "$VENV/legacy"
        local req
        grep -Ev '^[[:space:]]*(#|$)' "$LEGACY_REQUIREMENTS" | while read -r req; do
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
                --target "$VENV/legacy/${req/==/-}" "$req"
        done
        echo "$want" >"$stamp"
    fi
    "$VENV/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null \
        | grep -Ei '^(confluent-kafka|kafka-python|pytest)=' | tr '\n' ' '
    echo "legacy: $(cd "$VENV/legacy" && printf '%s ' *)"
}

run_cargo_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
    else
        cargo test --workspace --no-fail-fast
    fi
}

run_pytest() {
    local rc=0
    "$VENV/bin/python" -m pytest tests/python -q || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests"
    fi
    return "$rc"
}

stage setup "system packages (kcat)" install_system_packages
stage setup "python venv (.venv)" setup_venv
stage setup "cargo build -p millrace" cargo build -p millrace
stage check "cargo fmt --check" cargo fmt --all -- --check --color never
stage check "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    stage check "cargo nextest run --workspace" run_cargo_tests
else
    stage check "cargo test --workspace" run_cargo_tests
fi
stage check "pytest tests/python" run_pytest

print_summary
if [ "$FAILED" -ne 0 ]; then
    echo "FAILED"
    exit 1
fi
echo "all stages passed"
