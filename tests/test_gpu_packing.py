"""Fractional GPUs on a real Ray node: `--gpus-per-trial 0.5` packs two trials on one GPU, and no more.

The node's one GPU is logical (this machine has none), which is all Ray schedules by; the CPUs are not the
limit (4 for 4 trials of 1 CPU each), so how many trials run at once shows what the trials asked for.
"""
from __future__ import annotations

import pytest
from localcluster import LocalCluster
from mlflow.tracking import MlflowClient
from sweeps import children_of, lsdseg, tiny

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    # an end sorts before a start at the same ms
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_half_a_gpu_per_trial_runs_two_trials_at_a_time_on_one_gpu(tmp_path, cache_dir):
    cluster = LocalCluster(tmp_path)
    try:
        cluster.start_head(cpus=4, gpus=1)
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        done = lsdseg("sweep", "--name", "packed", "--address", cluster.address, "--storage", str(tmp_path / "shared"),
                      "--tracking-uri", uri, "--num-samples", "4",
                      "--concurrency", "4", "--cpus-per-trial", "1", "--gpus-per-trial", "0.5", "--scheduler", "none",
                      "--verify-seeds", "0", *tiny(cache_dir, 40, 20), "--train.threads=1", "--train.device=cpu",
                      cwd=tmp_path, env=cluster.env)
        # with train.device auto, a trial holding a GPU that torch cannot see fails at once, with its reason
        blind = lsdseg("sweep", "--name", "blind", "--address", cluster.address, "--storage", str(tmp_path / "shared"),
                       "--tracking-uri", uri, "--num-samples", "1", "--gpus-per-trial", "1", "--max-failures", "0",
                       "--verify-seeds", "0", *tiny(cache_dir, 40, 20), cwd=tmp_path, env=cluster.env)
    finally:
        cluster.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lsdseg")
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'packed'")[0]
    trials = children_of(client, parent.info.run_id, experiment.experiment_id)
    assert len(trials) == 4 and {t.info.status for t in trials} == {"FINISHED"}
    # 0.5 each on one GPU: two at once. Without the GPU request all four would run at once, and a request
    # rounded up to a whole GPU would run them one at a time.
    assert most_at_once([(t.info.start_time, t.info.end_time) for t in trials]) == 2

    assert blind.returncode == 1 and "no search trial completed" in blind.stderr
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.sweep = 'blind'")[0]
    [trial] = children_of(client, parent.info.run_id, experiment.experiment_id)
    error = client.download_artifacts(trial.info.run_id, "error.txt", str(tmp_path))
    assert "Ray gave this trial 1 GPU but torch" in open(error).read() and "miou" not in trial.data.metrics
