"""The cluster files pass Ray's own validation, open nothing but SSH to the world, and share one setup."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import yaml
from ray.autoscaler._private.aws.config import _create_default_inbound_rules
from ray.autoscaler._private.util import prepare_config, validate_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
AWS, ONPREM = ROOT / "ray_cluster.yaml", ROOT / "cluster" / "onprem" / "cluster.yaml"
SHARED = ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands", "rsync_filter", "file_mounts_sync_continuously")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", [AWS, ONPREM], ids=["aws", "onprem"])
def test_ray_validates_the_cluster_file(path):
    validate_config(prepare_config(load(path)))  # Ray's schema and provider checks, no cloud account


def test_every_aws_node_type_declares_its_resources():
    types = load(AWS)["available_node_types"]
    assert all("CPU" in t["resources"] for t in types.values())
    assert types["head"]["resources"]["CPU"] == 0  # trials stay off the head
    workers = [t for name, t in types.items() if name != "head"]
    assert all(t["resources"]["GPU"] == 1 for t in workers)
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot" for t in workers)
    assert any("InstanceMarketOptions" not in t["node_config"] for t in workers)  # the on-demand fallback


def test_only_ssh_is_open_to_the_world():
    config = load(AWS)
    extra = config["provider"].get("security_group", {}).get("IpPermissions")
    rules = _create_default_inbound_rules({"sg-cluster"}, extra)  # what Ray will authorize on the group
    world = [r for r in rules if any(ip.get("CidrIp") == "0.0.0.0/0" for ip in r.get("IpRanges", []))
             or any(ip.get("CidrIpv6") == "::/0" for ip in r.get("Ipv6Ranges", []))]
    assert world and all((r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", 22, 22) for r in world)
    assert all("SecurityGroupIds" not in t["node_config"] for t in config["available_node_types"].values())


def test_services_listen_on_loopback_and_ray_asks_for_a_token():
    head = (ROOT / "cluster" / "start-head.sh").read_text()
    assert "--dashboard-host=127.0.0.1" in head and "--host 127.0.0.1" in head
    for script in ("start-head.sh", "start-worker.sh"):
        assert "export RAY_AUTH_MODE=token" in (ROOT / "cluster" / script).read_text()
    for path in (AWS, ONPREM):
        assert load(path)["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_onprem_file_runs_the_same_setup_as_the_main_file():
    aws, onprem = load(AWS), load(ONPREM)
    assert {k: aws[k] for k in SHARED} == {k: onprem[k] for k in SHARED}
    assert aws["file_mounts"].keys() == onprem["file_mounts"].keys()


def test_ci_the_readme_and_every_node_install_one_lock():
    """One set of exact, hash-checked versions for CI, the README's test command and every node (Ray refuses a
    client and nodes of different versions), made by uv from the package's ranges; the project goes on top
    without dependencies."""
    lock = (ROOT / "requirements" / "lock.txt").read_text()
    pins = {line.split("==")[0].lower() for line in lock.splitlines() if "==" in line and not line.startswith((" ", "#"))}
    assert {"ray", "torch", "torchvision", "optuna", "mlflow", "psycopg", "numpy", "pytest"} <= pins
    blocks = [b for b in lock.split("\n") if "==" in b and not b.startswith((" ", "#"))]
    assert all(b.rstrip().endswith("\\") for b in blocks)  # every pin carries its hashes on the next lines
    assert "# via lsdseg-platform" in lock and "uv" in lock.splitlines()[0] and "requirements/lock.sh" in lock
    install = "--require-hashes -r requirements/lock.txt"
    assert install in (ROOT / ".ci" / "run").read_text() and install in (ROOT / "README.md").read_text()
    setup = (ROOT / "cluster" / "setup-node.sh").read_text()
    assert '--require-hashes -r "$HOME/lsdseg-platform/requirements/lock.txt"' in setup and "--no-deps -e" in setup
    sweep = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["sweep"]
    assert any(d.startswith("ray[tune]>=") and ",<" in d for d in sweep) and not any("==" in d for d in sweep)


@pytest.mark.parametrize("env", ["aws", "onprem"])
def test_nothing_a_sweep_keeps_stays_on_a_nodes_disk(env):
    """`ray down` deletes the nodes' disks: runs and registry, the study, sweep folders and checkpoints live
    elsewhere, and no password is written in the repo."""
    from urllib.parse import urlsplit

    settings = dict(line.split("=", 1) for line in (ROOT / "cluster" / env / "env").read_text().splitlines()
                    if line and not line.startswith("#"))
    assert settings["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert settings["LSDSEG_STUDY_URI"].startswith("postgresql://")
    assert urlsplit(settings["LSDSEG_STUDY_URI"]).path != urlsplit(settings["MLFLOW_BACKEND_STORE_URI"]).path  # own databases
    assert all(urlsplit(settings[k]).password is None for k in ("MLFLOW_BACKEND_STORE_URI", "LSDSEG_STUDY_URI"))
    assert settings["LSDSEG_ROOT"].startswith(("/mnt/lsdseg/", "/shared/"))
    head = (ROOT / "cluster" / "start-head.sh").read_text()
    assert "sqlite" not in head and '--backend-store-uri "${MLFLOW_BACKEND_STORE_URI:?' in head
