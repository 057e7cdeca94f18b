#!/usr/bin/env bash
# A worker node (worker_start_ray_commands of both cluster files): join the head. RAY_HEAD_IP and the
# node type's resources (RAY_OVERRIDE_RESOURCES) come from Ray's autoscaler.
set -euo pipefail
bin="$HOME/lsdseg-venv/bin"
export RAY_AUTH_MODE=token
"$bin/ray" stop
"$bin/ray" start --address="$RAY_HEAD_IP:6379" --disable-usage-stats
