#!/usr/bin/env bash
# The test command of the README: set up (idempotent), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-tests
exec .venv/bin/python -m pytest Testing -q -p no:cacheprovider "$@"
