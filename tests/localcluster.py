"""A real multi-node Ray cluster and a real MLflow server on 127.0.0.1, for tests and benchmarks.

Each node is its own `ray start --block` process tree, as on separate machines: killing one node's tree
is a node loss the others survive. Token authentication is on, with a token file of the cluster's own.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class Node:
    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc, self.log = proc, log

    def processes(self) -> list[psutil.Process]:
        """`ray start` and everything it started: GCS (head), raylet, agents, trial workers."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    @property
    def node_id(self) -> str | None:
        for p in self.processes():
            try:
                args = p.cmdline()
            except psutil.Error:
                continue
            if args and args[0].endswith("raylet"):
                return next((a.split("=", 1)[1] for a in args if a.startswith("--node_id=")), None)
        return None

    def kill(self) -> None:
        """SIGKILL the whole node at once, as a machine that dies (a reclaimed spot instance)."""
        for p in self.processes():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()

    def stop(self) -> None:
        """SIGTERM: `ray start --block` drains and stops its own processes, and nobody else's."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class LocalCluster:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = workdir / "auth_token"
        token.write_text(uuid.uuid4().hex)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
        self.nodes: list[Node] = []

    def _start(self, args: list[str], cpus: int, gpus: int = 0) -> Node:
        """`gpus` are logical on a machine without one: Ray schedules by them, and a trial holding one sees
        CUDA_VISIBLE_DEVICES set but no device, so it trains on the CPU."""
        log = self.workdir / f"node{len(self.nodes)}.log"
        cmd = [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
               f"--num-gpus={gpus}", "--disable-usage-stats", *args]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        node = Node(proc, log)
        self.nodes.append(node)
        _wait(lambda: node.node_id is not None or proc.poll() is not None, 60, "raylet")
        if proc.poll() is not None:
            raise RuntimeError(f"ray start failed: {log.read_text()[-2000:]}")
        return node

    def start_head(self, cpus: int = 1, gpus: int = 0) -> Node:
        return self._start(["--head", f"--port={self.port}", "--include-dashboard=false"], cpus, gpus)

    def add_worker(self, cpus: int = 1) -> Node:
        node = self._start([f"--address={self.address}"], cpus)
        self.wait_for_nodes(len(self.live()))
        return node

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc.poll() is None]

    def alive_nodes(self) -> int:
        code = (f"import ray; ray.init(address='{self.address}', log_to_driver=False); "
                "print('alive nodes:', sum(n['Alive'] for n in ray.nodes()))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True, timeout=120)
        # Ray may print its own warnings (a raylet's lagging heartbeats on a busy machine) after ours
        counts = [line.split(":", 1)[1] for line in out.stdout.splitlines() if line.startswith("alive nodes:")]
        return int(counts[-1]) if out.returncode == 0 and counts else 0

    def wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        _wait(lambda: self.alive_nodes() == n, timeout, f"{n} Ray nodes")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


class MLflowServer:
    """`mlflow server` on 127.0.0.1 with a sqlite backend and a local artifact root."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--artifacts-destination", str(workdir / "artifacts")]
        self.log = workdir / "mlflow-server.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self._healthy, 120, "mlflow server")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
        try:
            return urllib.request.urlopen(f"{self.uri}/health", timeout=2).status == 200
        except OSError:
            return False

    def listening(self) -> set[str]:
        """The addresses its processes listen on."""
        procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        return {c.laddr.ip for p in procs for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN}

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
