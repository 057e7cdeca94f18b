#!/usr/bin/env bash
# Regenerates requirements/lock.txt, the one set of exact versions (with their hashes) that CI, the test
# command of the README and every cluster node install: uv's universal resolution of the `test` extra
# (which holds `sweep` and `cluster`), valid on Python 3.10 and later, with torch held at the release the
# tests last passed with (requirements/tested.txt). Needs uv (`pip install uv`). Run it after changing a
# dependency in pyproject.toml, then run the tests in a fresh virtualenv installed from the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml --extra test --constraint requirements/tested.txt --generate-hashes --universal \
  --python-version 3.10 --emit-index-url --custom-compile-command "requirements/lock.sh" -o requirements/lock.txt
