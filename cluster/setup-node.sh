#!/usr/bin/env bash
# Every node, on every `ray up` (setup_commands of both cluster files): this project in its own
# virtualenv, with the exact, hash-checked versions of requirements/lock.txt, which the client and CI install
# too: client, head and workers run one Ray (Ray refuses to mix versions), one PyTorch, Optuna and MLflow.
set -euo pipefail
venv="$HOME/lsdseg-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { sudo apt-get update -q && sudo apt-get install -yq python3-venv && python3 -m venv "$venv"; }
fi
"$venv/bin/pip" install -q --require-hashes -r "$HOME/lsdseg-platform/requirements/lock.txt"
"$venv/bin/pip" install -q --no-deps -e "$HOME/lsdseg-platform"
# The shared folder of sweep folders (EFS or NFS), at the same path on every node; and the database
# password file, which libpq ignores unless only its owner can read it.
set -a; . "$HOME/lsdseg-settings/env"; set +a
if [ -n "${LSDSEG_NFS:-}" ] && ! mountpoint -q /mnt/lsdseg; then
  command -v mount.nfs4 >/dev/null || { sudo apt-get update -q && sudo apt-get install -yq nfs-common; }
  sudo mkdir -p /mnt/lsdseg && sudo mount -t nfs4 -o nfsvers=4.1,hard,timeo=600 "$LSDSEG_NFS" /mnt/lsdseg
  sudo chown "$(id -u):$(id -g)" /mnt/lsdseg
fi
mkdir -p "${LSDSEG_ROOT:?set LSDSEG_ROOT in the cluster env file: a folder every node mounts}"
[ -f "$HOME/.pgpass" ] && chmod 600 "$HOME/.pgpass"
# Login shells (`ray exec`, `ray attach`, `ray down`) find `ray` and `lsdseg`, speak token auth, and have the
# cluster's settings (LSDSEG_STORAGE, LSDSEG_ROOT, LSDSEG_STUDY_URI, MLFLOW_TRACKING_URI): `lsdseg sweep
# --address auto` needs no more flags.
line='[ -f ~/lsdseg-settings/env ] && { set -a; . ~/lsdseg-settings/env; set +a; }; export RAY_AUTH_MODE=token PATH="$HOME/lsdseg-venv/bin:$PATH"'
grep -qxF "$line" ~/.bashrc 2>/dev/null || echo "$line" >> ~/.bashrc
