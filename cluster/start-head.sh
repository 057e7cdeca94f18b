#!/usr/bin/env bash
# The head node (head_start_ray_commands of both cluster files): the MLflow tracking server and Ray's
# head. Neither is reachable from outside but through SSH tunnels (README, "On a cluster").
set -euo pipefail
set -a; . "$HOME/lsdseg-settings/env"; set +a
bin="$HOME/lsdseg-venv/bin"
export RAY_AUTH_MODE=token  # every Ray API asks for ~/.ray/auth_token, copied here by file_mounts
"$bin/ray" stop  # as Ray's own default: a repeated `ray up` restarts Ray with the new config
# MLflow on loopback: the sweep driver runs on this node and is the only writer (trials report to it
# through Ray), so no other machine needs to reach the server; people use `ssh -L 5000:127.0.0.1:5000`.
# Its runs and registry are in PostgreSQL, its artifacts in S3 (or the shared folder): none on this disk.
if ! "$bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health', timeout=2)" 2>/dev/null; then
  mkdir -p "$HOME/mlflow"  # its log only
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true nohup "$bin/mlflow" server \
    --host 127.0.0.1 --port 5000 --workers 2 --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:?set it in the cluster env file: postgresql://user@host/mlflow}" \
    --artifacts-destination "$MLFLOW_ARTIFACTS" > "$HOME/mlflow/server.log" 2>&1 < /dev/null &
fi
# The dashboard and Jobs API on loopback too: `ray dashboard <cluster yaml>` tunnels to them.
"$bin/ray" start --head --port=6379 --dashboard-host=127.0.0.1 --disable-usage-stats \
  --autoscaling-config="$HOME/ray_bootstrap_config.yaml"
