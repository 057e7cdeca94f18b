"""Start, resume and finish a sweep: a search (Ray Tune + Optuna TPE + early stopping), then the selection
(a race on selection seeds) and the verification of its one candidate against the default weights on
held-out seeds; later, more verification seeds (`--more-seeds`).

Everything a resume needs is in the sweep folder (lsdseg.sweep.layout): sweep.json records the phase, so a
driver killed in any phase continues that phase, and MLflow keeps one run per trial throughout.
The phases themselves are in lsdseg.sweep.phases.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import ray
from mlflow.tracking import MlflowClient
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lsdseg.config import Config
from lsdseg.config_io import dump_config, field_paths, load_config, to_dict, with_values
from lsdseg.data import prepare, split_digests
from lsdseg.runinfo import git_diff, git_sha
from lsdseg.sweep import console, phases
from lsdseg.sweep.errors import SweepError, SweepInterrupted
from lsdseg.sweep.finish import finish
from lsdseg.sweep.layout import SweepLayout
from lsdseg.sweep.results import SweepResults
from lsdseg.sweep.settings import SweepSettings, search_iterations
from lsdseg.sweep.spaces import check_space, load_space
from lsdseg.sweep.state import Look, Sweep, SweepState, read_state, write_state
from lsdseg.sweep.stores import artifact_root, check_owner, check_study_storage, driving
from lsdseg.sweep.tracking import check_store, dataset_inputs, default_tracking_uri, end_unfinished, start_parent
from lsdseg.sweep.verify import look_alpha
from lsdseg.sweep.warmstart import inside, load_warm_start, seed_study
from lsdseg.writable import unwritable


def _reference(tree: dict[str, Any], mode: str, out_dir: str) -> float:
    """A reference run on the same base config (e.g. source-only), as a Ray task beside the trials;
    a resumed sweep continues it from its own latest checkpoint."""
    from lsdseg.checkpoint import latest_checkpoint
    from lsdseg.train import run_training

    cfg = with_values(tree, {"train.mode": mode, "train.out_dir": out_dir})
    return run_training(cfg, resume=latest_checkpoint(out_dir)).miou


def _defaults_point(cfg: Config, distributions: dict) -> dict[str, Any]:
    """The base config's values of the searched fields (those inside the space's ranges)."""
    values = field_paths(cfg)
    return {k: values[k] for k, d in distributions.items() if inside(d, values[k])}


def _shared(storage: Optional[str]) -> Optional[str]:
    """An absolute folder or a URI, as Ray needs it."""
    return storage if storage is None or "://" in storage else str(Path(storage).resolve())


def _check_writable(folder: Optional[str], flag: str) -> None:
    """A folder the sweep will write to, tried before anything is written (a URI is Ray's to check)."""
    if folder is None or "://" in folder:
        return
    refused = unwritable(Path(folder).expanduser().absolute())
    if refused is not None:
        raise SweepError(f"{flag} {folder} cannot be written (at {refused}): "
                         "pass a folder this user can write, on a disk every node mounts on a cluster")


def _check_population(s: SweepSettings) -> None:
    """PBT compares the trials running at the same time: a population that runs two at a time is two."""
    if s.scheduler == "pbt" and s.max_concurrent < s.num_samples:
        raise SweepError(f"--scheduler pbt needs its whole population running at once: pass --concurrency {s.num_samples} "
                         f"(as --num-samples), and on few cores a smaller --cpus-per-trial, e.g. {2 / s.num_samples:g} on 2 cores")


def _first_look(s: SweepSettings, cfg: Config) -> Optional[int]:
    """How long a search trial trains, where that is shorter than the sweep's other runs."""
    length = search_iterations(s, cfg.train.iterations, cfg.train.eval_every)
    return length if length < cfg.train.iterations else None


def start_sweep(s: SweepSettings, cfg: Config, verbose: bool = False) -> SweepResults:
    # Every check comes before the folder, MLflow or Ray: bad input costs nothing and writes nothing.
    _check_population(s)
    if s.address and s.storage is None:
        raise SweepError("a sweep on a cluster needs storage every node reaches for its checkpoints: "
                         "pass --storage s3://bucket/prefix or a folder mounted on every node (or set LSDSEG_STORAGE)")
    s = dataclasses.replace(s, storage=_shared(s.storage))
    _check_writable(s.root, "--root")
    _check_writable(s.storage, "--storage")
    prepare(cfg.data, show_progress=True)  # the datasets' folders, as `lsdseg train` checks them; the benchmark, once
    tree = to_dict(cfg)
    distributions = check_space(load_space(s.space), s.space, tree)
    warm = load_warm_start(s.warm_start, distributions)
    layout = SweepLayout((Path(s.root) / s.name).resolve())
    if layout.folder.exists():
        raise SweepError(f"sweep folder {layout.folder} exists: continue it with --resume {layout.folder}, or pick another --name")
    uri = s.tracking_uri or default_tracking_uri()
    check_study_storage(s.study_uri, uri)  # first: MLflow's check makes its tables in an empty database
    check_store(uri)
    layout.folder.mkdir(parents=True)
    if s.space.endswith(".py"):  # the sweep keeps the space it runs: a resume reloads this copy
        shutil.copyfile(Path(s.space).expanduser().resolve(), layout.space_copy)
        s = dataclasses.replace(s, space=str(layout.space_copy))
    dump_config(cfg, layout.config)
    defaults = _defaults_point(cfg, distributions)
    with driving(layout), console.quiet(layout.log, verbose) as terminal:
        _live_views(terminal, layout, uri, layout.study_storage(s.study_uri))
        if warm.trials:
            seed_study(layout.study_storage(s.study_uri), s.name, warm)
        client = MlflowClient(uri)
        sha = git_sha()
        tags = {"git_sha": sha, "mlflow.source.git.commit": sha, "search_space": s.space, "sampler": s.searcher,
                "sampler_seed": str(s.sampler_seed), "scheduler": s.scheduler, "smoothing": str(s.smoothing),
                "objective": cfg.train.objective}
        experiment_id, parent = start_parent(client, s.experiment, s.name, tags, artifact_root(uri, Path(s.root)))
        digests = split_digests(cfg.data)
        client.log_inputs(parent, datasets=dataset_inputs(digests))  # which files: roots, counts, digests
        diff = git_diff()
        if diff:  # with the sha, the code exactly
            client.log_text(parent, diff, "git.diff")
        client.log_artifact(parent, str(layout.config))
        if s.space.endswith(".py"):
            client.log_artifact(parent, s.space)
        state = SweepState(settings=s, tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent,
                           started=time.strftime("%Y-%m-%d %H:%M:%S"), objective=cfg.train.objective, searched=sorted(distributions),
                           defaults=defaults, data=digests, first_points=[*warm.winners, defaults],
                           search_iterations=_first_look(s, cfg))
        write_state(layout, state)
        return _drive(Sweep(layout, state, tree, client))


def _live_views(terminal, layout: SweepLayout, uri: str, study: str) -> None:
    """The commands that open the sweep's live views, printed as it starts."""
    mlflow = f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}  (on 127.0.0.1:5000)"
    print(f"sweep folder: {layout.folder}\nlive views:  {mlflow}\n             optuna-dashboard {study}"
          "  (pip install -e '.[ui]'; on 127.0.0.1:8080)", file=terminal, flush=True)


RESUMABLE = ("num_samples", "address")  # what `--resume` may change: the trial budget, and where Ray is


def resume_sweep(folder: Path, changes: dict[str, Any], more_seeds: Optional[int] = None, verbose: bool = False) -> SweepResults:
    """Continue an interrupted sweep; or, with `more_seeds`, verify a finished sweep's candidate on that many
    new seeds (a new look, judged on its own). Every check comes before Ray or MLflow is touched."""
    layout = SweepLayout(Path(folder).resolve())
    if not layout.state.is_file():
        raise SweepError(f"{layout.folder} is not a sweep folder (no sweep.json): pass the folder `lsdseg sweep` printed")
    with driving(layout):  # first: what the checks below read may be changing under a running driver
        return _resume(layout, changes, more_seeds, verbose)


def _resume(layout: SweepLayout, changes: dict[str, Any], more_seeds: Optional[int], verbose: bool) -> SweepResults:
    state = read_state(layout)
    s = state.settings
    if more_seeds is not None:
        state = _plan_more_seeds(layout, state, more_seeds)
    elif state.status == "finished":
        raise SweepError(f"sweep {layout.folder} has finished: add verification seeds with --more-seeds N, or search further "
                         f"with a new sweep and --warm-start {layout.folder}")
    if state.status == "failed":
        raise SweepError(f"sweep {layout.folder} ended with no completed trial: fix the errors in {layout.log} and start a new sweep")
    planned = s.num_samples
    if changes.get("num_samples", planned) != planned and state.phase != "search":
        raise SweepError(f"sweep {layout.folder} has finished its search: resume it without --num-samples, "
                         f"then search further with a new sweep and --warm-start {layout.folder}")
    if changes.get("num_samples", planned) < planned:
        raise SweepError(f"--num-samples {changes['num_samples']} is below the {planned} trials this sweep already planned: "
                         "pass more, or drop it")
    s = dataclasses.replace(s, **changes)
    _check_population(s)
    if state.phase == "search" and not phases.can_restore(layout, s, "search"):
        raise SweepError(f"{layout.folder} holds no Ray Tune state to resume (it stopped before the first trial): start a new sweep")
    tree = to_dict(load_config(layout.config))
    load_space(s.space)  # a space file's module must be importable before Tune unpickles the searcher
    check_study_storage(s.study_uri, state.tracking_uri)
    check_store(state.tracking_uri, existing=True)
    with console.quiet(layout.log, verbose):
        client = MlflowClient(state.tracking_uri)
        check_owner(state, client, layout.study_storage(s.study_uri))
        client.update_run(state.parent_run_id, status="RUNNING")
        sweep = Sweep(layout, state, tree, client)
        sweep.update(settings=s, status="running")
        return _drive(sweep)


def _plan_more_seeds(layout: SweepLayout, state: SweepState, count: int) -> SweepState:
    """The next look's seeds, after checking that there is a candidate to verify and nothing is left to do."""
    if state.status != "finished":
        raise SweepError(f"sweep {layout.folder} has not finished ({state.status}): resume it without --more-seeds first")
    if not state.looks:
        raise SweepError(f"sweep {layout.folder} verified nothing (--verify-seeds 0): start a new sweep with verification")
    results = SweepResults(layout)
    if results.candidate is None:
        raise SweepError(f"sweep {layout.folder} has no candidate to verify: its race kept the default weights")
    if results.shipped_candidate:
        raise SweepError(f"sweep {layout.folder} already shipped its candidate ({results.candidate_label}): more seeds cannot change that")
    base = to_dict(load_config(layout.config))["train"]["seed"]
    look = len(state.looks) + 1
    seeds = phases.next_verify_seeds(base, state.looks, count)
    iterations = state.looks[0].iterations
    return state.replace(looks=[*state.looks, Look(seeds=seeds, alpha=look_alpha(state.settings.alpha, look), iterations=iterations)],
                         phase="more_seeds", status="running")


def _defaults_number(layout: SweepLayout, state: SweepState) -> Optional[int]:
    """This sweep's search trial that ran exactly the default weights (a warm start's copied trials ran in
    another sweep; none under PBT, whose trials take others' weights)."""
    if state.settings.scheduler == "pbt":
        return None
    return next((t.number for t in SweepResults(layout).search if t.params == state.defaults), None)


def _drive(sweep: Sweep) -> SweepResults:
    layout, tree, s = sweep.layout, sweep.tree, sweep.settings
    phases.start_ray(s)
    pending = None
    grids = {}
    try:
        if s.references and "source_only" not in sweep.state.references:
            # on the driver's node where it fits, so that its run folder sits in the sweep folder
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            task = ray.remote(num_cpus=s.cpus_per_trial, num_gpus=s.gpus_per_trial, scheduling_strategy=here)(_reference)
            pending = task.remote(tree, "source_only", str(layout.source_only))
        if sweep.state.phase == "search":
            grids["search"] = phases.search(sweep)
            iterations = s.verify_iterations or tree["train"]["iterations"]
            seeds = phases.next_verify_seeds(tree["train"]["seed"], [], s.verify_seeds)
            completed = any(t.status == "completed" for t in SweepResults(layout).search)
            # nothing to select without a completed trial, nor to race for without a verification to follow
            sweep.update(phase="select" if completed and seeds else "done", defaults_number=_defaults_number(layout, sweep.state),
                         looks=[Look(seeds=seeds, alpha=s.alpha, iterations=iterations)] if seeds else [])
        if sweep.state.phase == "select":
            grids["select"] = phases.select(sweep)
            sweep.update(phase="done")
        if sweep.state.phase == "more_seeds":
            look = len(sweep.state.looks)
            grids[f"look-{look}"] = phases.more_seeds(sweep, SweepResults(layout).candidate.number, look)
        if pending is not None:
            sweep.update(references={**sweep.state.references, "source_only": ray.get(pending)})
            pending = None
        return finish(sweep, grids)
    except (KeyboardInterrupt, phases.Interrupted):
        if pending is not None:
            ray.cancel(pending, force=True)  # it resumes from its own checkpoint; nobody waits for it now
        end_unfinished(sweep.client, sweep.state.experiment_id, sweep.state.parent_run_id)
        sweep.update(status="interrupted")
        raise SweepInterrupted(layout.folder) from None
    finally:
        ray.shutdown()
