"""A real `ray up` of the on-premises cluster file against this machine, over SSH.

sshd listens on 127.0.0.1:22 only, with key-only auth. It runs in its own PID namespace, with
copy-on-write overlays on root's home and on the virtualenv: what `ray up` does there (its setup's
`pip install`, edits to ~/.bashrc, and `ray stop`, which Ray's start commands and `ray down` run and
which kills every Ray process it can see) touches no process and no file outside the test.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.system]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _install_ssh_server() -> None:
    """Debian's openssh-server and rsync, without letting the package start a system sshd."""
    if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
        if shutil.which("rsync"):
            return
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:  # Debian's hook: exit 101 forbids maintainer scripts to start services
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "openssh-server", "rsync"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.fail(f"could not install openssh-server and rsync: {done.stderr[-1000:]}")
    finally:
        if created:
            policy.unlink()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def sshd(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: it runs sshd and mounts overlays in a namespace of its own")
    _install_ssh_server()
    for port in (22, 5000, 6379, 8265):  # sshd's, and those start-head.sh gives MLflow and Ray's head
        assert _port_free(port), f"port {port} on 127.0.0.1 is taken: this test needs it free"
    ssh = tmp_path / "ssh"
    ssh.mkdir(mode=0o700)
    for key in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key)], check=True)
    (ssh / "authorized_keys").write_text((ssh / "id_ed25519.pub").read_text())
    (ssh / "sshd_config").write_text(f"""ListenAddress 127.0.0.1
Port 22
HostKey {ssh / 'host_key'}
AuthorizedKeysFile {ssh / 'authorized_keys'}
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PidFile {ssh / 'sshd.pid'}
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    home, venv = Path(pwd.getpwuid(0).pw_dir), Path(sys.prefix)
    layers = tmp_path / "layers"
    for name in ("home-up", "home-work", "venv-up", "venv-work"):
        (layers / name).mkdir(parents=True)
    namespace = f"""set -e
mount -t overlay overlay -o lowerdir={home},upperdir={layers}/home-up,workdir={layers}/home-work {home}
mount -t overlay overlay -o lowerdir={venv},upperdir={layers}/venv-up,workdir={layers}/venv-work {venv}
ln -sfn {venv} {home}/lsdseg-venv
exec /usr/sbin/sshd -D -e -f {ssh / 'sshd_config'}
"""
    log = open(tmp_path / "sshd.log", "w")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "bash", "-c", namespace],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if not _port_free(22) or proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        assert proc.poll() is None, (tmp_path / "sshd.log").read_text()
        yield ssh / "id_ed25519"
    finally:
        proc.kill()  # --kill-child: the namespace's first process dies with it, and the kernel ends the rest
        proc.wait()
        log.close()


def ray(*args, cwd, timeout=900):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([str(BIN / "ray"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"ray {args[0]} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_ray_up_runs_a_smoke_sweep_and_ray_down(sshd, tmp_path):
    settings = tmp_path / "settings"
    settings.mkdir()
    # a single machine: its disk is the shared storage, and MLflow's store a file on it
    (settings / "env").write_text(f"LSDSEG_STORAGE={tmp_path / 'shared'}\nMLFLOW_ARTIFACTS={tmp_path / 'artifacts'}\n"
                                  f"MLFLOW_BACKEND_STORE_URI=sqlite:///{tmp_path / 'mlflow.db'}\n"
                                  f"LSDSEG_ROOT={tmp_path / 'sweeps'}\nLSDSEG_NFS=\n"
                                  "MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n")
    (tmp_path / "pgpass").write_text("")  # no database password on this machine
    token = tmp_path / "auth_token"
    token.write_text(os.urandom(16).hex())
    # The on-premises file as a user fills it in: its machines, its login, its settings; commands untouched.
    config = yaml.safe_load((ROOT / "cluster" / "onprem" / "cluster.yaml").read_text())
    config.update(cluster_name="lsdseg-launch-test", min_workers=0, max_workers=0)
    config["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(sshd)}
    config["file_mounts"].update({"~/lsdseg-platform": str(ROOT), "~/lsdseg-settings": str(settings), "~/.ray/auth_token": str(token),
                                  "~/.pgpass": str(tmp_path / "pgpass")})
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(config))

    ray("up", "-y", "--no-config-cache", str(cluster_file), cwd=ROOT)
    try:
        sweep = ray("exec", str(cluster_file), "OMP_NUM_THREADS=1 lsdseg sweep --smoke-test --name launched --address auto", cwd=ROOT)
        assert "search: 3 trials" in sweep and "shipped: " in sweep and "compare trials: open http://127.0.0.1:5000" in sweep
        # the head's MLflow server (reachable here: same network) holds the sweep's parent and trial runs
        query = json.dumps({"experiment_ids": ["0", "1"], "filter": "tags.sweep = 'launched'"}).encode()
        request = urllib.request.Request("http://127.0.0.1:5000/api/2.0/mlflow/runs/search", query, {"Content-Type": "application/json"})
        parent = json.load(urllib.request.urlopen(request))["runs"]
        assert len(parent) == 1
        assert list((tmp_path / "shared" / "launched").glob("*/checkpoint_*/checkpoint.pt"))  # trials used the storage
        assert (tmp_path / "sweeps" / "launched" / "best.json").is_file()  # the sweep folder under LSDSEG_ROOT
    finally:
        ray("down", "-y", str(cluster_file), cwd=ROOT)
    assert _port_free(8265)  # Ray's head is gone
