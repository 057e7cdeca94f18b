"""The phases of a sweep, each a Ray Tune experiment:

1. search: Optuna proposes configurations, each trained once on the search seed, for the first look's share of
   the training length (early stopping may prune);
2. select: `lsdseg.sweep.race` proposes one (configuration, seed) run per trial: the race on selection seeds
   (where the search looked shorter, a configuration's race run on the search seed continues its search
   trial from its last checkpoint), then the candidate's and the default weights' runs on the verification seeds;
3. look k (after `lsdseg sweep --resume DIR --more-seeds N`): the candidate and the defaults on N more seeds.

Every trial reports the smoothed score and is logged by the driver's MLflow callback under the sweep's
parent run, tagged with its phase (search, race or verify) and seed. A phase that Tune saved is restored,
never restarted.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import pickle
from pathlib import Path
from typing import Any, Optional

import optuna
import ray
from mlflow.tracking import MlflowClient
from ray import tune

from lsdseg.config_io import field_paths, with_values
from lsdseg.schedule import read_lineage
from lsdseg.sweep.errors import SweepError
from lsdseg.sweep.layout import SweepLayout
from lsdseg.sweep.progress import SweepProgress
from lsdseg.sweep.race import DEFAULTS, Race, Run
from lsdseg.sweep.results import SweepResults
from lsdseg.sweep.searcher import OptunaSearcher, RaceSearcher, draw_population, tell_population
from lsdseg.sweep.settings import SweepSettings
from lsdseg.sweep.spaces import continuous, load_space
from lsdseg.sweep.state import Look, Sweep, SweepState, read_state
from lsdseg.sweep.stopping import make_scheduler
from lsdseg.sweep.tracking import MLflowTrials
from lsdseg.trainables.lsdseg_trainable import MEMBER, lsdseg_trainable, pbt_trainable, run_trainable

# Fixed settings logged with every trial, so MLflow's compare view shows what the trials shared.
KEY_FIXED = ("train.mode", "train.iterations", "train.eval_every", "train.seed", "model.backbone",
             "data.source.name", "data.target.name", "data.batch_size", "data.crop_height", "data.crop_width")
VERIFY_OFFSET = 1000  # verification seeds are train.seed + 1000 + i: no search or race run uses them


class Interrupted(Exception):
    """Tune stopped on Ctrl-C before every trial of the phase had ended."""


def selection_seeds(base_seed: int, s: SweepSettings) -> list[int]:
    """The search seed first, then the race's."""
    return [base_seed + i for i in range(s.selection_seeds)]


def next_verify_seeds(base_seed: int, looks: list[Look], count: int) -> list[int]:
    """`count` verification seeds that no earlier look used."""
    used = sum(len(look.seeds) for look in looks)
    return [base_seed + VERIFY_OFFSET + used + i for i in range(count)]


def _code_dirs() -> list[str]:
    """The package a trial imports (search_spaces/ and trainables/ are in it as lsdseg.search_spaces and
    lsdseg.trainables), shipped from the driver: code edited on the head reaches every node."""
    import lsdseg

    return [next(iter(lsdseg.__path__))]


def start_ray(s: SweepSettings) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # short trials checkpoint often by design; Tune's snapshot-frequency warning is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if s.address:
        ray.init(address=s.address, log_to_driver=False, runtime_env={"py_modules": _code_dirs()})
    else:  # a fresh local instance, never one left over by a killed driver; no dashboard to expose
        ray.init(address="local", include_dashboard=False, log_to_driver=False)


def _path(layout: SweepLayout, s: SweepSettings, phase: str) -> str:
    return "/".join(layout.experiment(phase, s.storage, s.name))


def can_restore(layout: SweepLayout, s: SweepSettings, phase: str) -> bool:
    """Whether Tune saved the phase's experiment. A driver killed between the Tuner's start (tuner.pkl) and its
    first snapshot (experiment_state-*.json) left nothing to restore: the phase starts again."""
    path = _path(layout, s, phase)
    if not tune.Tuner.can_restore(path):
        return False
    try:
        tune.ExperimentAnalysis(path)
    except ValueError:  # "No experiment snapshot file ... was found"
        return False
    return True


def search_tree(sweep: Sweep) -> dict:
    """The base config of a search trial: the sweep's, for the first look's length where that is shorter."""
    tree, length = sweep.tree, sweep.state.search_iterations
    return tree if length is None else {**tree, "train": {**tree["train"], "iterations": length}}


def _trainable(fn, tree: dict, s: SweepSettings):
    trainable = tune.with_parameters(fn, base=tree, smoothing=s.smoothing)
    return tune.with_resources(trainable, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})


def _run_config(sweep: Sweep, phase: str, callbacks: list) -> tune.RunConfig:
    s = sweep.settings
    storage_path, name = sweep.layout.experiment(phase, s.storage, s.name)
    # PBT hands a trial's latest checkpoint to another trial, which restores it a moment later: keep a few
    # more, or the donor may have pruned it by then
    keep = 6 if phase == "search" and s.scheduler == "pbt" else 2
    # kept: the latest (to resume from, and the one a run ships) and the best by the run's objective
    checkpoints = tune.CheckpointConfig(num_to_keep=keep, checkpoint_score_attribute="selection", checkpoint_score_order="max")
    return tune.RunConfig(storage_path=storage_path, name=name, callbacks=callbacks, verbose=0,
                          failure_config=tune.FailureConfig(max_failures=s.max_failures), checkpoint_config=checkpoints)


def _callbacks(sweep: Sweep, phase: str, searcher, trials: int, varying: tuple[str, ...] = (), tree: Optional[dict] = None) -> list:
    state, tree = sweep.state, tree or sweep.tree
    values = field_paths(with_values(tree, {}))
    # every searched field too, at the base value a trial keeps when it does not sample it (a conditional
    # one): every run then has the same params, which MLflow's compare plots need (they drop a run missing one)
    logged = {k: values[k] for k in (*KEY_FIXED, *state.searched)}
    mlflow = MLflowTrials(state.tracking_uri, state.experiment_id, state.parent_run_id, phase, searcher,
                          logged, tree["train"]["seed"], tree["train"]["iterations"], varying, state.data)
    return [mlflow, SweepProgress(phase, trials, tree["train"]["iterations"], mlflow.run_name)]


def _check(grid: tune.ResultGrid, planned: int | None) -> tune.ResultGrid:
    """A phase ends with every trial ended and (unless a time budget cut it) none missing; else Ctrl-C stopped it."""
    if len(grid) - grid.num_terminated - grid.num_errors or (planned is not None and len(grid) < planned):
        raise Interrupted
    return grid


def _budget(folder: str) -> int:
    """The search's trial budget, as sweep.json holds it (a resume may raise it)."""
    return read_state(SweepLayout(Path(folder))).settings.num_samples


def _searcher(s: SweepSettings, layout: SweepLayout, first: list[dict]) -> OptunaSearcher:
    if s.searcher == "tpe":
        # TPE's default of 10 random start-up trials would leave a 12-trial sweep almost unguided.
        sampler = optuna.samplers.TPESampler(seed=s.sampler_seed, multivariate=True, group=True, constant_liar=True,
                                             n_startup_trials=max(3, s.num_samples // 3))
    else:
        sampler = optuna.samplers.RandomSampler(seed=s.sampler_seed)
    # The defaults (and a warm start's winners) go first: the default weights are always measured.
    return OptunaSearcher(load_space(s.space), s.space, s.name, layout.study_storage(s.study_uri), sampler,
                          [p for p in first if p], functools.partial(_budget, str(layout.folder)))


def _search_fn(s: SweepSettings):
    return pbt_trainable if s.scheduler == "pbt" else lsdseg_trainable


def search(sweep: Sweep) -> tune.ResultGrid:
    layout, state, s = sweep.layout, sweep.state, sweep.settings
    tree = search_tree(sweep)
    trainable = _trainable(_search_fn(s), tree, s)
    if can_restore(layout, s, "search"):
        tuner = _resume(sweep, "search", trainable)
    else:
        iterations = tree["train"]["iterations"]
        mutations = continuous(load_space(s.space), s.space) if s.scheduler == "pbt" else {}
        scheduler = make_scheduler(s.scheduler, metric="score", mode="max", max_t=iterations, grace_period=s.grace_period,
                                   reduction_factor=s.reduction_factor, pbt_interval=s.pbt_interval, mutations=mutations)
        if s.scheduler == "pbt":  # Tune's PBT takes no searcher: a population drawn up front, one trial each
            searcher = None
            members = draw_population(load_space(s.space), s.space, sweep.study_storage, s.name, s.sampler_seed,
                                      s.num_samples, [p for p in state.first_points if p])
            space, samples = {MEMBER: tune.grid_search(members)}, 1
            tune_config = dict(max_concurrent_trials=s.max_concurrent)
        else:
            searcher = _searcher(s, layout, state.first_points)
            space, samples = None, -1  # the searcher ends the search at its budget, which a resume may raise
            tune_config = dict(search_alg=searcher, max_concurrent_trials=s.max_concurrent)
        callbacks = _callbacks(sweep, "search", searcher, s.num_samples, tuple(mutations), tree)
        tuner = tune.Tuner(
            trainable, param_space=space,
            # PBT restarts a trial with another's checkpoint and new values; a function trainable's actor cannot
            # be reset for that (Tune errors the trial), so PBT trials get fresh actors
            tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=samples, time_budget_s=s.time_budget_s,
                                        reuse_actors=s.scheduler != "pbt", **tune_config),
            run_config=_run_config(sweep, "search", callbacks),
        )
    grid = _check(tuner.fit(), s.num_samples if s.time_budget_s is None else None)
    if s.scheduler == "pbt":  # each member by the number its run was given when it started
        numbers = {t.ray_trial_id: t.number for t in SweepResults(layout).search}
        tell_population(sweep.study_storage, s.name,
                        [(numbers.get((r.metrics or {}).get("trial_id")), r.metrics, r.error is not None) for r in grid])
    return grid


def results_of(sweep: Sweep, phase: str) -> Optional[tune.ResultGrid]:
    """A finished phase's results (its checkpoints), without running anything; None if it never started."""
    layout, s = sweep.layout, sweep.settings
    if not can_restore(layout, s, phase):
        return None
    fn, base = (_search_fn(s), search_tree(sweep)) if phase == "search" else (run_trainable, sweep.tree)
    return _restore(_path(layout, s, phase), _trainable(fn, base, s)).get_results()


def _restore(path: str, trainable, **resume) -> tune.Tuner:
    """A phase's Tune experiment as Tune saved it. Its state pickles the searcher and callbacks of the lsdseg
    that wrote it: one written by an earlier version (or under another Ray) is a one-line error, not a traceback."""
    try:
        return tune.Tuner.restore(path, trainable=trainable, **resume)
    except (AttributeError, ModuleNotFoundError, ImportError, pickle.UnpicklingError, TypeError) as err:
        raise SweepError(f"the Ray Tune state in {path} was written by another version of lsdseg or Ray ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:160]}): finish the sweep with that version, or start a new sweep "
                         "(--warm-start keeps its trials)") from None


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a race or verification run trains: its configuration's values (and a PBT schedule's later
    changes), by configuration key, and the lengths of race and verification runs."""

    params: dict[int, dict[str, Any]]
    changes: dict[int, list]
    defaults: int
    race_iterations: int
    verify_iterations: int
    look: int = 1
    # where search trials were shorter: the search seed, and each completed search trial's last checkpoint,
    # from which its race run on that seed continues
    search_seed: Optional[int] = None
    continues: dict[int, str] = dataclasses.field(default_factory=dict)

    def continued(self, run: Run) -> Optional[str]:
        """The checkpoint a race run continues from, if it continues a search trial."""
        return self.continues.get(run.config) if run.stage == "race" and run.seed == self.search_seed else None


def point(run: Run, plan: Plan) -> dict[str, Any]:
    """A run's Tune config (`lsdseg.trainables.lsdseg_trainable.run_trainable` reads it; the MLflow callback tags it)."""
    verify = run.stage == "verify"
    return {"number": None if run.config == DEFAULTS else run.config, "defaults": run.config == plan.defaults,
            "seed": run.seed, "phase": run.stage, "look": plan.look if verify else None,
            "params": plan.params[run.config], "changes": plan.changes.get(run.config, []),
            "iterations": plan.verify_iterations if verify else plan.race_iterations, "resume": plan.continued(run)}


def _plan(sweep: Sweep, look: int = 1) -> tuple[Plan, dict[int, float]]:
    """The configurations a race may run, and their search scores."""
    layout, state, s, tree = sweep.layout, sweep.state, sweep.settings, sweep.tree
    results = SweepResults(layout)
    defaults = state.defaults_number if state.defaults_number is not None else DEFAULTS
    search = {t.number: t.score if t.status == "completed" else float("nan") for t in results.search if t.number is not None}
    params = {number: dict(values) for number, values in results.params_of.items()} | {defaults: dict(state.defaults)}
    iterations = tree["train"]["iterations"]
    short = state.search_iterations is not None
    last = _search_checkpoints(sweep, results.search) if s.scheduler == "pbt" or short else {}
    changes = {n: _changes(c) for n, c in last.items()} if s.scheduler == "pbt" else {}
    continues = {n: c.path for n, c in last.items()} if short else {}
    return Plan(params, changes, defaults, iterations, s.verify_iterations or iterations, look,
                tree["train"]["seed"] if short else None, continues), search


def _race(sweep: Sweep, plan: Plan, search: dict[int, float], verify_seeds: list[int]) -> Race:
    """The race of a sweep's selection stage. Where search trials were shorter, no search score counts as a
    selection seed's, and a race run that continues a search trial costs the share of a run it adds."""
    s, tree = sweep.settings, sweep.tree
    short = plan.search_seed is not None
    added = 1 - search_tree(sweep)["train"]["iterations"] / tree["train"]["iterations"]
    return Race(search, plan.defaults, selection_seeds(tree["train"]["seed"], s), verify_seeds, s.race_runs,
                comparable=s.scheduler != "pbt" and not short, short=short, continuable=frozenset(plan.continues), continued_cost=added)


def select(sweep: Sweep) -> tune.ResultGrid:
    """The race on selection seeds, then the verification of its candidate (state.looks[0])."""
    layout, state, s, tree = sweep.layout, sweep.state, sweep.settings, sweep.tree
    trainable = _trainable(run_trainable, tree, s)
    if can_restore(layout, s, "select"):
        tuner = _resume(sweep, "select", trainable)
    else:
        drop_orphans(state, "select")
        plan, search = _plan(sweep)
        race = _race(sweep, plan, search, state.looks[0].seeds if state.looks else [])
        cheapest = min([race.price(Run(c, race.selection_seeds[0], "race")) for c in search] + [1.0])
        runs = math.ceil(s.race_runs / max(cheapest, 1e-9) - 1e-9)  # race runs at most
        most = runs + s.selection_seeds + 2 * s.verify_seeds  # trials Tune may create; the race ends sooner
        searcher = RaceSearcher(race, functools.partial(point, plan=plan))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=most, max_concurrent_trials=s.max_concurrent, reuse_actors=True),
            run_config=_run_config(sweep, "select", _callbacks(sweep, "select", None, runs + 2 * s.verify_seeds)),
        )
    return _check(tuner.fit(), None)


def more_seeds(sweep: Sweep, candidate: int, look: int) -> tune.ResultGrid:
    """Look `look`: the candidate and the defaults on that look's seeds, judged on their own."""
    layout, state, s, tree = sweep.layout, sweep.state, sweep.settings, sweep.tree
    phase = f"look-{look}"
    trainable = _trainable(run_trainable, tree, s)
    if can_restore(layout, s, phase):
        tuner = _resume(sweep, phase, trainable)
    else:
        drop_orphans(state, phase)
        plan, _ = _plan(sweep, look)
        runs = [Run(config, seed, "verify") for seed in state.looks[look - 1].seeds for config in (candidate, plan.defaults)]
        tuner = tune.Tuner(
            trainable, param_space={"point": tune.grid_search([point(r, plan) for r in runs])},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=s.max_concurrent, reuse_actors=True),
            run_config=_run_config(sweep, phase, _callbacks(sweep, phase, None, len(runs))),
        )
    return _check(tuner.fit(), None)


def _search_checkpoints(sweep: Sweep, trials: list) -> dict[int, tune.Checkpoint]:
    """Each completed search trial's last checkpoint, by its number."""
    numbers = {t.ray_trial_id: t.number for t in trials if t.status == "completed"}
    found = {}
    for result in results_of(sweep, "search") or []:
        number = numbers.get((result.metrics or {}).get("trial_id"))
        if number is not None and result.checkpoint is not None:
            found[number] = result.checkpoint
    return found


def _changes(checkpoint: tune.Checkpoint) -> list:
    """A PBT trial's later changes of values, from the lineage beside its last checkpoint."""
    with checkpoint.as_directory() as folder:
        return [list(change) for change in (read_lineage(folder) or [])[1:]]


def _resume(sweep: Sweep, phase: str, trainable) -> tune.Tuner:
    """The phase's Tune experiment as Tune last saved it, without the MLflow runs of trials it started after."""
    path = _path(sweep.layout, sweep.settings, phase)
    drop_orphans(sweep.state, phase, keep={t.trial_id for t in tune.ExperimentAnalysis(path).trials})
    return _restore(path, trainable, resume_unfinished=True, resume_errored=True)


def drop_orphans(state: SweepState, phase: str, keep: frozenset[str] | set[str] = frozenset()) -> None:
    """MLflow runs of trials that Tune never saved (their driver was killed between a trial's start and the
    next save of the experiment): a restored searcher proposes those runs again under new trial ids, so the
    old runs go (deleted runs stay restorable in MLflow); `keep`: the trial ids Tune restores."""
    client = MlflowClient(state.tracking_uri)
    query = f"tags.mlflow.parentRunId = '{state.parent_run_id}' and tags.experiment = '{phase}'"
    for run in client.search_runs([state.experiment_id], filter_string=query, max_results=10_000):
        if run.data.tags.get("ray_trial_id") not in keep:
            client.delete_run(run.info.run_id)
