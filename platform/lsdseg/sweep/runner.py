"""Run or resume a sweep: Ray Tune trials of `trainables.lsdseg_trainable`, Optuna TPE, ASHA, MLflow.

A sweep folder `<root>/<name>/` holds everything needed to resume it: `sweep.json` (settings, MLflow ids,
references), `config.yaml` (the base config), `optuna.db` (the study, also for optuna-dashboard) and
`trials/` (Ray Tune's experiment: trial states, checkpoints, searcher state). On a cluster the Tune
experiment lives under `--storage` (shared folder or s3:// URI) instead, and the best checkpoint is copied
back into `best_checkpoint/`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
import ray
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lsdseg.config import Config
from lsdseg.config_io import dump_config, field_paths, load_config, to_dict, with_values
from lsdseg.runinfo import git_sha
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.progress import SweepProgress
from lsdseg.sweep.searcher import HonestOptunaSearch, trial_outcome
from lsdseg.sweep.settings import SweepSettings
from lsdseg.sweep.spaces import check_space, load_space
from lsdseg.sweep.tracking import MLflowTrials, default_tracking_uri, start_parent
from trainables.lsdseg_trainable import lsdseg_trainable

# Fixed settings logged with every trial, so MLflow's compare view shows what the trials shared.
KEY_FIXED = ("train.mode", "train.iterations", "train.eval_every", "train.seed", "model.backbone",
             "data.source.name", "data.target.name", "data.batch_size", "data.crop_height", "data.crop_width")


@dataclass(frozen=True)
class TrialRow:
    name: str
    path: str  # the trial's folder in the Tune experiment (a URI on remote storage)
    optuna_number: Optional[int]
    status: str
    steps: int
    miou: float
    best_miou: float
    params: dict[str, Any]
    checkpoint: Optional[str]


@dataclass(frozen=True)
class SweepOutcome:
    folder: Path
    rows: list[TrialRow]  # best first
    references: dict[str, float]
    tracking_uri: str
    best: Optional[TrialRow]


def _reference(tree: dict[str, Any], mode: str, out_dir: str) -> float:
    """A reference run on the same base config (e.g. source-only), as a Ray task beside the trials;
    a resumed sweep continues it from its own latest checkpoint."""
    from lsdseg.train import latest_checkpoint, run_training

    cfg = with_values(tree, {"train.mode": mode, "train.out_dir": out_dir})
    return run_training(cfg, resume=latest_checkpoint(out_dir)).miou


def _searcher(s: SweepSettings, space, folder: Path, defaults: dict[str, Any]) -> HonestOptunaSearch:
    if s.searcher == "tpe":
        # TPE's default of 10 random start-up trials would leave a 12-trial sweep almost unguided.
        startup = max(3, s.num_samples // 3)
        sampler = optuna.samplers.TPESampler(seed=s.sampler_seed, multivariate=True, group=True, constant_liar=True,
                                             n_startup_trials=startup)
    else:
        sampler = optuna.samplers.RandomSampler(seed=s.sampler_seed)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    # The base config's own values are trial 0: the default weights are always measured, and TPE knows them.
    return HonestOptunaSearch(space=space, metric="miou", mode="max", sampler=sampler, study_name=s.name,
                              storage=storage, points_to_evaluate=[defaults] if defaults else None)


def _inside(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return value in dist.choices
    return value is not None and dist.low <= value <= dist.high


def _defaults_point(cfg: Config, distributions: dict) -> dict[str, Any]:
    """The base config's values of the searched fields (those inside the space's ranges)."""
    values = field_paths(cfg)
    return {k: values[k] for k, d in distributions.items() if _inside(d, values[k])}


def _scheduler(s: SweepSettings, cfg: Config):
    if s.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="step", metric="miou", mode="max", max_t=cfg.train.iterations,
                         grace_period=min(s.grace_period, cfg.train.iterations), reduction_factor=s.reduction_factor)


def _trainable(tree: dict[str, Any], s: SweepSettings, tracking_uri: str):
    trainable = tune.with_parameters(lsdseg_trainable, base=tree, tracking_uri=tracking_uri)
    return tune.with_resources(trainable, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})


def _code_dirs() -> list[str]:
    """The packages a trial imports, shipped from the driver: code edited on the head reaches every node."""
    import lsdseg
    import search_spaces
    import trainables

    return [next(iter(m.__path__)) for m in (lsdseg, search_spaces, trainables)]


def _start_ray(s: SweepSettings) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # short trials checkpoint often by design; Tune's snapshot-frequency warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if s.address:
        ray.init(address=s.address, log_to_driver=False, runtime_env={"py_modules": _code_dirs()})
    else:  # a fresh local instance, never one left over by a killed driver; no dashboard to expose
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


def _experiment(s: SweepSettings, folder: Path) -> tuple[str, str]:
    """(storage_path, name) of the Tune experiment: the sweep folder's trials/ on one machine, else
    <storage>/<sweep name>, which every node reaches."""
    return (str(folder), "trials") if s.storage is None else (s.storage, s.name)


def _shared(storage: Optional[str]) -> Optional[str]:
    """An absolute folder or a URI, as Ray needs it."""
    return storage if storage is None or "://" in storage else str(Path(storage).resolve())


def start_sweep(s: SweepSettings, cfg: Config) -> SweepOutcome:
    if s.address and s.storage is None:
        raise SweepError("a sweep on a cluster needs storage every node reaches for its checkpoints: "
                         "pass --storage s3://bucket/prefix or a folder mounted on every node (or set LSDSEG_STORAGE)")
    s = dataclasses.replace(s, storage=_shared(s.storage))
    space = load_space(s.space)
    tree = to_dict(cfg)
    distributions = check_space(space, s.space, tree)  # before Ray starts: a bad space costs nothing
    folder = (Path(s.root) / s.name).resolve()
    if folder.exists():
        raise SweepError(f"sweep folder {folder} exists: continue it with --resume {folder}, or pick another --name")
    folder.mkdir(parents=True)
    if s.space.endswith(".py"):  # the sweep keeps the space it runs: a resume reloads this copy
        shutil.copyfile(Path(s.space).expanduser().resolve(), folder / "space.py")
        s = dataclasses.replace(s, space=str(folder / "space.py"))
        space = load_space(s.space)
    dump_config(cfg, folder / "config.yaml")
    uri = s.tracking_uri or default_tracking_uri()
    client = MlflowClient(uri)
    sha = git_sha()
    tags = {"git_sha": sha, "mlflow.source.git.commit": sha, "search_space": s.space,
            "sampler": s.searcher, "sampler_seed": str(s.sampler_seed), "scheduler": s.scheduler}
    experiment_id, parent = start_parent(client, s.experiment, s.name, tags)
    client.log_artifact(parent, str(folder / "config.yaml"))
    if s.space.endswith(".py"):
        client.log_artifact(parent, str(Path(s.space).resolve()))
    state = {"settings": dataclasses.asdict(s), "tracking_uri": uri, "experiment_id": experiment_id,
             "parent_run_id": parent, "references": {}}
    (folder / "sweep.json").write_text(json.dumps(state, indent=2))

    _start_ray(s)
    searcher = _searcher(s, space, folder, _defaults_point(cfg, distributions))
    # Every searched field too, at the base value a trial keeps when it does not sample it (a conditional one):
    # every trial's run then has the same params, which MLflow's compare plots need (they drop a run missing one).
    logged = {k: field_paths(cfg)[k] for k in (*KEY_FIXED, *distributions)}
    callback = MLflowTrials(uri, experiment_id, parent, searcher, logged, cfg.train.seed)
    storage_path, name = _experiment(s, folder)
    tuner = tune.Tuner(
        _trainable(tree, s, uri),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=_scheduler(s, cfg), num_samples=s.num_samples,
                                    max_concurrent_trials=s.max_concurrent, time_budget_s=s.time_budget_s, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage_path, name=name, callbacks=[callback, SweepProgress(s.num_samples)],
                                  failure_config=tune.FailureConfig(max_failures=s.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=0),
    )
    return _finish(tuner, folder, state, s, tree, client)


def resume_sweep(folder: Path, address: Optional[str] = None) -> SweepOutcome:
    folder = Path(folder).resolve()
    if not (folder / "sweep.json").is_file():
        raise SweepError(f"{folder} is not a sweep folder (no sweep.json): pass the folder `lsdseg sweep` printed")
    state = json.loads((folder / "sweep.json").read_text())
    s = SweepSettings(**{**state["settings"], "address": address or state["settings"]["address"]})
    experiment = "/".join(_experiment(s, folder))
    if not tune.Tuner.can_restore(experiment):
        raise SweepError(f"{folder} holds no Ray Tune state to resume (it stopped before the first trial): start a new sweep")
    tree = to_dict(load_config(folder / "config.yaml"))
    load_space(s.space)  # a space file's module must be importable before Tune unpickles the searcher
    client = MlflowClient(state["tracking_uri"])
    client.update_run(state["parent_run_id"], status="RUNNING")
    _start_ray(s)
    tuner = tune.Tuner.restore(experiment, trainable=_trainable(tree, s, state["tracking_uri"]), resume_unfinished=True, resume_errored=True)
    return _finish(tuner, folder, state, s, tree, client)


def _finish(tuner, folder: Path, state: dict, s: SweepSettings, tree: dict, client: MlflowClient) -> SweepOutcome:
    pending = None
    if s.references and "source_only" not in state["references"]:
        # on the driver's node where it fits, so that its run folder sits in the sweep folder
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        task = ray.remote(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial, scheduling_strategy=here)(_reference)
        pending = task.remote(tree, "source_only", str(folder / "reference-source_only"))
    try:
        grid = tuner.fit()
        if pending is not None:
            state["references"]["source_only"] = ray.get(pending)
            (folder / "sweep.json").write_text(json.dumps(state, indent=2))
    finally:
        ray.shutdown()
    parent = state["parent_run_id"]
    numbers = {r.data.tags.get("ray_trial_id"): r.data.tags.get("optuna_trial_number") for r in client.search_runs(
        [state["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=10_000)}
    results = {r.path: r for r in grid}
    rows = sorted((_row(r, numbers) for r in grid), key=lambda r: (r.status == "completed", r.miou), reverse=True)
    base = field_paths(with_values(tree, {}))
    # trial 0 measures the default weights only if it ran exactly the base config's values
    defaults = next((r for r in rows if r.optuna_number == 0 and all(base[k] == v for k, v in r.params.items())), None)
    if defaults is not None:
        state["references"]["default_weights"] = defaults.miou
    best = next((r for r in rows if r.status == "completed"), rows[0] if rows else None)
    metrics = {f"reference_{k}_miou": v for k, v in state["references"].items()}
    if best is not None:
        metrics["best_miou"] = best.miou
        (folder / "best.json").write_text(json.dumps(dataclasses.asdict(best), indent=2))
        dump_config(with_values(tree, best.params), folder / "best_config.yaml")  # retrain: lsdseg train --config it
        client.log_artifact(parent, str(folder / "best.json"))
        client.log_artifact(parent, str(folder / "best_config.yaml"))
        checkpoint = results[best.path].checkpoint
        if checkpoint is not None:  # a local copy, wherever the trial ran and whatever the storage
            checkpoint.to_directory(str(folder / "best_checkpoint"))
            client.log_artifacts(parent, str(folder / "best_checkpoint"), "best_checkpoint")
    for key, value in metrics.items():
        client.log_metric(parent, key, value)
    client.set_terminated(parent, "FINISHED")
    return SweepOutcome(folder, rows, state["references"], state["tracking_uri"], best)


def _row(result, numbers: dict[str, Optional[str]]) -> TrialRow:
    last = result.metrics or {}
    history = result.metrics_dataframe
    best = float(history["miou"].max()) if history is not None and "miou" in history else float("nan")
    number = numbers.get(last.get("trial_id"))
    checkpoint = result.checkpoint
    return TrialRow(
        name=Path(result.path).name, path=result.path, optuna_number=int(number) if number not in (None, "None") else None,
        status=trial_outcome(last, error=result.error is not None), steps=int(last.get("step", 0)),
        miou=float(last.get("miou", float("nan"))), best_miou=best, params=dict(result.config),
        checkpoint=_location(checkpoint.filesystem, f"{checkpoint.path}/checkpoint.pt") if checkpoint else None,
    )


def _location(filesystem, path: str) -> str:
    """A path on this machine, or a URI (s3://...) where the checkpoint lives on remote storage."""
    return path if filesystem.type_name == "local" else f"{filesystem.type_name}://{path}"
