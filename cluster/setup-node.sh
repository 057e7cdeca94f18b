#!/usr/bin/env bash
# Every node, on every `ray up` (setup_commands of both cluster files): this project in its own
# virtualenv. The install reads the same pyproject.toml as the client's, whose exact Ray pin keeps
# client, head and workers on one Ray version (Ray refuses to mix versions).
set -euo pipefail
venv="$HOME/lsdseg-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { sudo apt-get update -q && sudo apt-get install -yq python3-venv && python3 -m venv "$venv"; }
fi
"$venv/bin/pip" install -q -e "$HOME/lsdseg-platform[cluster]"
# Login shells (`ray exec`, `ray attach`, `ray down`) find `ray` and `lsdseg`, speak token auth, and have the
# cluster's settings (LSDSEG_STORAGE, MLFLOW_TRACKING_URI): `lsdseg sweep --address auto` needs no more flags.
line='[ -f ~/lsdseg-settings/env ] && { set -a; . ~/lsdseg-settings/env; set +a; }; export RAY_AUTH_MODE=token PATH="$HOME/lsdseg-venv/bin:$PATH"'
grep -qxF "$line" ~/.bashrc 2>/dev/null || echo "$line" >> ~/.bashrc
