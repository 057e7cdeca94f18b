"""A sweep on real multi-node Ray clusters (`ray start` processes on 127.0.0.1) with a real MLflow server.

Scaling: the same sweep (no early stopping, no reference run) on one node of one CPU and on two nodes of
one CPU each, one after the other in this run; the wall-time ratio is the speed-up from the second node.
Recovery: one trial on a three-node cluster (the head takes no trials); its node is SIGKILLed after its
first report. Measured: seconds from the kill to the trial's first new report (from its checkpoint on the
surviving node), and iterations redone (trained after its last checkpoint, lost with the node).

    python bench/cluster.py [--trials 4] [--iterations 120] [--eval-every 20]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from localcluster import LocalCluster, MLflowServer  # noqa: E402 (the tests' real cluster, shared)
from sweeps import lsdseg, tiny  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import save  # noqa: E402


def _sweep(cluster, server, work, name, trials, iterations, eval_every, cache, wait=True):
    args = ["sweep", "--name", name, "--address", cluster.address, "--storage", str(work / "shared"),
            "--tracking-uri", server.uri, "--num-samples", str(trials), "--concurrency", str(trials), "--scheduler", "none",
            "--no-references", *tiny(cache, iterations, eval_every), "--train.threads=1"]
    return lsdseg(*args, cwd=work, env=cluster.env, wait=wait, timeout=3600)


def scaling(server, work, cache, trials, iterations, eval_every) -> dict:
    walls = {}
    for nodes in (1, 2):
        cluster = LocalCluster(Path(tempfile.mkdtemp(dir=work)))
        try:
            cluster.start_head(cpus=1)
            for _ in range(nodes - 1):
                cluster.add_worker(cpus=1)
            start = time.perf_counter()
            run = _sweep(cluster, server, work, f"scale{nodes}", trials, iterations, eval_every, cache)
            walls[nodes] = time.perf_counter() - start
            assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        finally:
            cluster.stop()
    return {"one_node_s": round(walls[1], 1), "two_nodes_s": round(walls[2], 1), "speedup": round(walls[1] / walls[2], 2)}


def _history(client, sweep):
    """{run id: [(step, logged at ms)]} of the sweep's trials."""
    experiment = client.get_experiment_by_name("lsdseg")
    if experiment is None:
        return {}
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.sweep = '{sweep}'")
    if not parents:
        return {}
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    return {r.info.run_id: sorted((m.step, m.timestamp) for m in client.get_metric_history(r.info.run_id, "miou")) for r in runs}


def recovery(server, work, cache, iterations, eval_every) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    cluster = LocalCluster(Path(tempfile.mkdtemp(dir=work)))
    try:
        cluster.start_head(cpus=0)
        workers = [cluster.add_worker(cpus=1), cluster.add_worker(cpus=1)]
        driver = _sweep(cluster, server, work, "recovery", 1, iterations, eval_every, cache, wait=False)
        while driver.poll() is None:
            reports = next(iter(_history(client, "recovery").values()), [])
            if len(reports) >= 2:  # two reports give the trial's own pace
                break
            time.sleep(0.2)
        node_id = client.search_runs([client.get_experiment_by_name("lsdseg").experiment_id],
                                     filter_string="tags.status = 'running'")[0].data.tags["ray_node_id"]
        victim = next(w for w in workers if w.node_id == node_id)
        killed_at = time.time()
        victim.kill()
        driver.communicate(timeout=3600)
        assert driver.returncode == 0
    finally:
        cluster.stop()
    (history,) = _history(client, "recovery").values()
    before = [(s, t) for s, t in history if t <= killed_at * 1000]
    after = [(s, t) for s, t in history if t > killed_at * 1000]
    seconds_per_iteration = (before[-1][1] - before[0][1]) / 1000 / (before[-1][0] - before[0][0])
    trained_since_checkpoint = (killed_at - before[-1][1] / 1000) / seconds_per_iteration
    return {"kill_to_next_report_s": round(after[0][1] / 1000 - killed_at, 1),
            "of_which_training_s": round(eval_every * seconds_per_iteration, 1),
            "last_checkpoint_step": before[-1][0], "next_report_step": after[0][0],
            "iterations_redone_estimate": round(min(trained_since_checkpoint, eval_every - 1)),
            "seconds_per_iteration": round(seconds_per_iteration, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--eval-every", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    cache = work / "cache"
    server = MLflowServer(work)
    try:
        report = {"benchmark": "cluster", "trials": args.trials, "iterations": args.iterations, "eval_every": args.eval_every,
                  "scaling": scaling(server, work, cache, args.trials, args.iterations, args.eval_every),
                  "recovery": recovery(server, work, cache, args.iterations * 2, args.eval_every)}
    finally:
        server.stop()
    save("cluster", report)
    print(json.dumps(report, indent=2))
    s, r = report["scaling"], report["recovery"]
    print(f"\n{'sweep of ' + str(args.trials) + ' trials, 1 node x 1 CPU':<40} {s['one_node_s']:8.1f} s")
    print(f"{'same sweep, 2 nodes x 1 CPU':<40} {s['two_nodes_s']:8.1f} s   speed-up x{s['speedup']:.2f}")
    print(f"{'node kill -> trial reports again':<40} {r['kill_to_next_report_s']:8.1f} s   "
          f"({r['of_which_training_s']:.1f} s of it is the {args.eval_every} iterations to the next report)")
    print(f"{'iterations redone (estimate)':<40} {r['iterations_redone_estimate']:8d}     "
          f"(checkpoint at {r['last_checkpoint_step']}, next report at {r['next_report_step']})")


if __name__ == "__main__":
    main()
