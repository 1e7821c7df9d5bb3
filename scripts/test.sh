#!/usr/bin/env bash
# Runs Eventline's whole test suite on a fresh machine: starts every server the tests need
# (scripts/test-services.sh), then runs all tests of the workspace.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -p eventline    # extra arguments go to the test runner
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-services.sh
source scripts/test-services.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
