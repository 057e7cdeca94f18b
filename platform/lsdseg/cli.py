"""The `lsdseg` command line (click): train, sweep, eval, config, report, predict, export.

Config overrides are `--section.key=value` words after the options, e.g.
`lsdseg train --config my.yaml --train.iterations=3000 --loss.f_adv=0.05`.
Every known kind of bad input ends in one line naming the problem and the fix, and exit status 1.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import sys
import time
import typing
from dataclasses import replace
from pathlib import Path

import click
from click.core import ParameterSource

from lsdseg.checkpoint import CheckpointError
from lsdseg.config import Config
from lsdseg.config_io import ConfigError, load_config, to_dict
from lsdseg.data.base import DataError
from lsdseg.interrupted import Interrupted
from lsdseg.models import PretrainedError
from lsdseg.objectives import Objective
from lsdseg.sweep.errors import SpaceError, SweepError
from lsdseg.sweep.settings import SweepSettings  # pydantic only: no Ray, Optuna or MLflow at start-up
from lsdseg.train import ResumeError

USER_ERRORS = (ConfigError, DataError, CheckpointError, PretrainedError, ResumeError, SpaceError, SweepError)
EXTRA = {"ignore_unknown_options": True, "allow_extra_args": True}


def _message(err: Exception) -> str:
    """The error's own message. One raised in a data-loader worker arrives in the main process with the
    worker's traceback around it (torch's ExceptionWrapper): its last line is the original message."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            raise click.ClickException(_message(err)) from None
        except OSError as err:  # a path given on the command line (--out, --root, --storage, ...) that the OS refused
            if err.filename is None:
                raise
            raise click.ClickException(f"{err.filename}: {err.strerror or type(err).__name__}: "
                                       "pass a path this user can write (and read) on a local or mounted file system") from None
        except KeyboardInterrupt as err:  # one that knows what it left says so (lsdseg.interrupted)
            click.echo(str(err) if isinstance(err, Interrupted) else "interrupted", err=True)
            sys.exit(130)
    return wrapper


PLATFORM = ("ray", "optuna", "mlflow")  # what the sweep extra brings; the method needs none of them


def platform_command(fn):
    """A command of the platform (sweeps, reports, exports): without the sweep extra, one line that names it."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        missing = [name for name in PLATFORM if importlib.util.find_spec(name) is None]
        if missing:
            raise SweepError(f"`lsdseg {fn.__name__}` needs the platform, which is not installed ({', '.join(missing)} missing): "
                             "pip install 'lsdseg-platform[sweep]' (in a clone: pip install -e '.[sweep]')")
        return fn(*args, **kwargs)
    return wrapper


def _overrides(ctx: click.Context) -> list[str]:
    """The config overrides after the options, as --section.key=value: written so, as --section.key value, or
    as Hydra's section.key=value."""
    words, found = list(ctx.args), []
    while words:
        word = words.pop(0)
        key = word.removeprefix("--").split("=", 1)[0]
        if "." not in key or (not word.startswith("--") and "=" not in word):
            raise ConfigError(f"unexpected argument {word!r}: config overrides look like --section.key=value, "
                              "--section.key value or section.key=value")
        if "=" in word:
            found.append(f"--{word.removeprefix('--')}")
        elif words and not words[0].startswith("--"):
            found.append(f"{word}={words.pop(0)}")
        else:
            raise ConfigError(f"override {word!r} has no value: write it as {word}=value or {word} value")
    return found


# --smoke-test: a couple of iterations on a tiny benchmark, proving the whole path works in seconds. These
# go under the command line's own overrides, so an explicit --train.iterations=... still wins.
SMOKE = ["--data.batch_size=2", "--data.synthetic_size=8", "--data.val_limit=4", "--data.source_val_limit=4",
         "--train.iterations=2", "--train.eval_every=2"]


def _note(cfg) -> None:
    """A setting that works but is likely a mistake, said in one line before the run starts."""
    from lsdseg.models import start_note

    note = start_note(cfg.model)
    if note:
        click.echo(f"note: {note}", err=True)


def _also_lines(also: dict[str, float]) -> str:
    """Each data.ALSO_REPORTED figure on its own line, e.g. SYNTHIA's mIoU* (13 classes)."""
    from lsdseg.data import ALSO_REPORTED

    return "".join(f"  {name}, {ALSO_REPORTED[name]}: {v * 100:.1f}\n" for name, v in also.items())


def _iou_table(per_class: dict[str, float]) -> str:
    return "\n".join(f"  {name:<14} {iou * 100:5.1f}" for name, iou in per_class.items())


class OneLineGroup(click.Group):
    """Click's usage errors (a non-numeric number, an unknown option) in one line, like every other bad input,
    instead of the usage block click prints above them."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as err:
            command = err.ctx.command_path if err.ctx else "lsdseg"
            click.echo(f"Error: {err.format_message()} (see {command} --help)", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineGroup)
@click.version_option(package_name="lsdseg-platform")
def main() -> None:
    """LSD-seg: sim-to-real semantic segmentation (Sankaranarayanan et al., CVPR 2018)."""


def _default(field: str):
    """A sweep option's default, from the one place that defines it."""
    return SweepSettings.__pydantic_fields__[field].default


CONFIG_HELP = "YAML file of config sections, or a packaged config's name; repeat to layer (later wins)."
OVERRIDES = ("Any config field can be set after the options: --section.key=value, --section.key value, or "
             "section.key=value (Hydra's form); e.g. --train.iterations=300 loss.f_adv=0.1. Sections: "
             f"{', '.join(f.name for f in dataclasses.fields(Config) if f.name != 'faults')}; "
             "`lsdseg config` prints every key with its value.")


@main.command(context_settings=EXTRA, epilog=OVERRIDES)
@click.option("--config", "config_paths", multiple=True, help=CONFIG_HELP)
@click.option("--resume", type=click.Path(exists=True), help="Continue from this checkpoint, or a run folder's latest.")
@click.option("--objective", type=click.Choice(typing.get_args(Objective)), default=None,
              help="What selects the checkpoint: target_miou (needs target labels) or a label-free validator (train.objective).")
@click.option("--smoke-test", is_flag=True, help="Run a couple of iterations on a tiny benchmark.")
@click.option("--tracking-uri", default=None, envvar="MLFLOW_TRACKING_URI",
              help="Log the run to this MLflow store (or set MLFLOW_TRACKING_URI; experiment: MLFLOW_EXPERIMENT_NAME, else lsdseg).")
@click.pass_context
@one_line_errors
def train(ctx: click.Context, config_paths: tuple[str, ...], resume: str | None, objective: str | None, smoke_test: bool,
          tracking_uri: str | None) -> None:
    """Train one run; with no arguments, LSD-seg on the built-in benchmark with the small backbone."""
    from lsdseg.checkpoint import latest_checkpoint
    from lsdseg.data import protocol_classes  # heavy imports after argument checks
    from lsdseg.train import run_training

    cfg = load_config(config_paths,
                      (SMOKE if smoke_test else []) + _overrides(ctx) + ([f"--train.objective={objective}"] if objective else []))
    if resume is not None and Path(resume).is_dir():  # a run folder: its latest checkpoint, and the run goes on in it
        folder, resume = Path(resume), latest_checkpoint(resume)
        if resume is None:
            raise ResumeError(f"run folder {folder} holds no checkpoint yet: start it again instead of resuming")
        if cfg.train.out_dir is None:
            cfg = replace(cfg, train=replace(cfg.train, out_dir=str(folder)))
    if resume is None:
        _note(cfg)
    tracked = _train_run(ctx, tracking_uri, cfg)
    result = None
    try:
        result = run_training(cfg, report=tracked.report if tracked else None, resume=resume, progress=True)
    finally:
        if tracked:
            tracked.end(result)
    last, chosen = (result.history[-1] if result.history else None), result.selected
    if result.status != "completed":
        click.echo(f"run {result.status}: {result.message}", err=True)
    if last is not None:
        classes = f"target mIoU ({len(protocol_classes(cfg.data))} classes)"
        if cfg.data.target_labels:
            click.echo(f"{classes} at the last evaluation (iteration {last.step}): {last.miou * 100:.1f}")
            click.echo(_also_lines(last.also) + _iou_table(last.per_class_iou))
        click.echo("validators: " + ", ".join(f"{k} {v:.4g}" for k, v in last.validators.items()))
        click.echo(f"checkpoint: {last.checkpoint}")
    if chosen is not None:
        selected = f"selected by {cfg.train.objective} ({chosen.objective:.4g}): iteration {chosen.step}"
        if cfg.data.target_labels:
            selected += (f", {classes} {chosen.miou * 100:.1f}; best seen {result.best_miou * 100:.1f} "
                         "(an oracle figure: picked on target labels)")
        click.echo(f"{selected}\nselected checkpoint: {Path(result.out_dir) / 'checkpoints' / 'selected' / 'checkpoint.pt'}")
    click.echo(f"run folder: {result.out_dir}")
    if result.status != "completed":
        sys.exit(3)


def _train_run(ctx: click.Context, uri: str | None, cfg):
    """The MLflow run of `lsdseg train`, when a tracking URI is given or set; without the sweep extra, one
    line for a URI given on the command line, a note for one set in the environment (the run still trains)."""
    if uri is None:
        return None
    if importlib.util.find_spec("mlflow") is None:
        if ctx.get_parameter_source("tracking_uri") == ParameterSource.COMMANDLINE:
            raise SweepError("--tracking-uri needs MLflow, which is not installed: pip install 'lsdseg-platform[sweep]' "
                             "(in a clone: pip install -e '.[sweep]'), or drop --tracking-uri")
        click.echo("note: MLFLOW_TRACKING_URI is set but MLflow is not installed (pip install 'lsdseg-platform[sweep]'): "
                   "this run is not logged to MLflow", err=True)
        return None
    from lsdseg.sweep.train_run import TrainRun

    return TrainRun(uri, cfg)


def _choices(field: str) -> list[str]:
    return list(typing.get_args(SweepSettings.__pydantic_fields__[field].annotation))


@main.command(context_settings=EXTRA, epilog=OVERRIDES)
@click.option("--config", "config_paths", multiple=True, help=CONFIG_HELP + " Applied after configs/sweep.yaml.")
@click.option("--space", default=_default("space"), show_default=True,
              help="Search space: full, loss_weights, learning_rates, or a .py file.")
@click.option("--objective", type=click.Choice(typing.get_args(Objective)), default=None,
              help="What the search, early stopping, confirmation and checkpoints select by (train.objective; default target_miou).")
@click.option("--num-samples", type=int, default=_default("num_samples"), show_default=True,
              help="Search trials (with --resume: raise the budget).")
@click.option("--concurrency", "max_concurrent", type=int, default=_default("max_concurrent"), show_default=True,
              help="Trials running at once.")
@click.option("--time-budget", "time_budget_s", type=float, default=None, help="Seconds after which the search stops.")
@click.option("--cpus-per-trial", type=float, default=_default("cpus_per_trial"), show_default=True)
@click.option("--gpus-per-trial", type=float, default=_default("gpus_per_trial"), show_default=True, help="Fractions pack trials on a GPU.")
@click.option("--searcher", type=click.Choice(_choices("searcher")), default=_default("searcher"), show_default=True)
@click.option("--scheduler", type=click.Choice(_choices("scheduler")), default=_default("scheduler"), show_default=True,
              help="Early stopping: asha, hyperband (3 brackets), asha_patient (twice the grace), none; "
                   "or pbt (Population Based Training).")
@click.option("--grace-period", type=int, default=_default("grace_period"), show_default=True,
              help="Iterations before a trial may be stopped.")
@click.option("--reduction-factor", type=float, default=_default("reduction_factor"), show_default=True,
              help="Keep the top 1/N at each rung.")
@click.option("--pbt-interval", type=int, default=_default("pbt_interval"), show_default=True,
              help="PBT: iterations between exploit/explore steps.")
@click.option("--smoothing", type=int, default=_default("smoothing"), show_default=True,
              help="Score = mean target mIoU of the last N evaluations.")
@click.option("--selection-seeds", type=int, default=_default("selection_seeds"), show_default=True,
              help="Seeds a configuration may race on, the search's own first.")
@click.option("--first-look", type=float, default=None,
              help="Share of the training length a search trial trains; the race continues the leaders to full length "
                   "[default: 1/3, or 1 with --scheduler].")
@click.option("--race-runs", type=float, default=_default("race_runs"), show_default="10/3: five search trials continued",
              help="Runs the race may spend after the search (continuing a search trial costs the share it adds).")
@click.option("--verify-seeds", type=int, default=_default("verify_seeds"), show_default=True,
              help="Held-out seeds on which the candidate and the default weights are each retrained; 0: ship the defaults.")
@click.option("--verify-iterations", type=int, default=None, help="Length of the verification runs (default: train.iterations).")
@click.option("--alpha", type=float, default=_default("alpha"), show_default=True,
              help="Ship the candidate only if its one-sided lower bound at this level on the verified difference ...")
@click.option("--margin", type=float, default=_default("margin"), show_default=True,
              help="... is above this many points (objective units).")
@click.option("--min-effect", type=float, default=_default("min_effect"), show_default=True,
              help="The difference (objective units) the power advice is about.")
@click.option("--warm-start", multiple=True, help="A finished sweep (folder or name) whose trials seed this study; repeatable.")
@click.option("--references/--no-references", default=_default("references"), show_default=True,
              help="Also run source-only on the base config.")
@click.option("--max-failures", type=int, default=_default("max_failures"), show_default=True,
              help="Retries of a crashed trial, from its checkpoint.")
@click.option("--seed", "sampler_seed", type=int, default=_default("sampler_seed"), show_default=True, help="Sampler seed.")
@click.option("--name", default=None, help="Sweep name (default: sweep-<time>); its folder is sweeps/<name>.")
@click.option("--root", default=_default("root"), show_default=True, envvar="LSDSEG_ROOT",
              help="Folder that holds sweep folders; on a cluster, one every node mounts (or set LSDSEG_ROOT).")
@click.option("--experiment", default=_default("experiment"), show_default=True, help="MLflow experiment.")
@click.option("--tracking-uri", default=None, envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI: a server, or a database such as postgresql://user@host/mlflow (default: sqlite:///./mlflow.db).")
@click.option("--study-uri", default=None, envvar="LSDSEG_STUDY_URI",
              help="The Optuna study's database, apart from MLflow's, e.g. postgresql://user@host/optuna "
                   "(default: optuna.db in the sweep folder). Passwords: PGPASSWORD or ~/.pgpass, never in a URI.")
@click.option("--address", default=None, help="Ray cluster address, e.g. auto (default: a local Ray).")
@click.option("--storage", default=None, envvar="LSDSEG_STORAGE",
              help="Trial checkpoints on a cluster: s3://bucket/prefix or a folder on every node.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue this interrupted sweep folder.")
@click.option("--more-seeds", type=click.IntRange(min=1), default=None,
              help="With --resume of a finished sweep: verify its candidate on N more held-out seeds (a new look, judged on its own).")
@click.option("--verbose", is_flag=True, help="Show Ray's, MLflow's and Optuna's own output (else in the sweep folder's sweep.log).")
@click.option("--smoke-test", is_flag=True, help="A tiny sweep of 3 short trials, a short race and a small verification.")
@click.pass_context
@one_line_errors
@platform_command
def sweep(ctx: click.Context, config_paths: tuple[str, ...], resume_dir: str | None, more_seeds: int | None, smoke_test: bool,
          verbose: bool, objective: str | None, **options) -> None:
    """Search loss weights and learning rates of LSD-seg (Ray Tune + Optuna TPE), race the best on selection
    seeds, verify one candidate against the default weights on held-out seeds, ship it only if it is
    reliably better; track everything in MLflow."""
    from lsdseg.config_io import PACKAGED
    from lsdseg.sweep import leaderboard
    from lsdseg.sweep.errors import SweepInterrupted
    from lsdseg.sweep.runner import RESUMABLE, resume_sweep, start_sweep

    try:
        if more_seeds is not None and resume_dir is None:
            raise SweepError("--more-seeds adds verification seeds to a finished sweep: pass it with --resume DIR")
        if resume_dir is not None:
            given = [n for n in ctx.params if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE
                     and n not in ("resume_dir", "verbose", "more_seeds")]
            flags = {p.name: p.opts[0] for p in ctx.command.params}
            fixed = [flags[n] for n in given if n not in RESUMABLE] + (["config overrides"] if ctx.args else [])
            if fixed:
                raise SweepError(f"--resume continues a sweep with its own settings; {', '.join(fixed)} cannot change: "
                                 "drop them (only --num-samples and --address may be given), or start a new sweep")
            results = resume_sweep(Path(resume_dir), {n: options[n] for n in given if n in RESUMABLE}, more_seeds, verbose)
        else:
            cfg = load_config([PACKAGED / "sweep.yaml", *config_paths],
                              (SMOKE if smoke_test else []) + _overrides(ctx) + ([f"--train.objective={objective}"] if objective else []))
            values = {k: v for k, v in options.items() if v is not None and v != ()}
            if smoke_test:  # under the options given on the command line, as the config overrides are
                given = {n for n in options if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
                smoke = {"num_samples": 3, "grace_period": 2, "selection_seeds": 2, "race_runs": 2, "verify_seeds": 2,
                         "name": f"smoke-{time.strftime('%Y%m%d-%H%M%S')}"}
                values |= {k: v for k, v in smoke.items() if k not in given}
            _note(cfg)
            results = start_sweep(_settings(SweepSettings, values), cfg, verbose)
    except SweepInterrupted as stop:
        click.echo(f"interrupted: unfinished runs are marked KILLED in MLflow; continue with:\n  lsdseg sweep --resume {stop.folder}",
                   err=True)
        sys.exit(130)
    click.echo(leaderboard.render(results))
    if results.state.status == "failed":
        raise SweepError(f"no search trial completed, so there is no winner: see the errors in {results.layout.log} "
                         "and in MLflow (each errored run's error.txt), fix them, and start a new sweep")


@main.command()
@click.option("--root", default=_default("root"), show_default=True, type=click.Path(file_okay=False), envvar="LSDSEG_ROOT",
              help="Folder that holds sweep folders (or set LSDSEG_ROOT).")
@one_line_errors
@platform_command
def sweeps(root: str) -> None:
    """List the sweeps under ROOT: name, status, trials done/planned, confirmed best, start time."""
    from lsdseg.sweep.leaderboard import render_sweeps

    click.echo(render_sweeps(Path(root)))


def _settings(cls, values: dict):
    from pydantic import ValidationError

    try:
        return cls(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # a rule across options: its message names them and the fix
            raise ConfigError(first["msg"].removeprefix("Value error, ")) from None
        raise ConfigError(f"bad sweep option {where}: {first['msg']} (got {first.get('input')!r})") from None


@main.command("eval", context_settings=EXTRA)
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(dir_okay=False),
              help="A checkpoint written by `lsdseg train`.")
@click.option("--split", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="The target's validation split (data.target_val, what selection reads) or its test split (data.target_test).")
@click.pass_context
@one_line_errors
def eval_(ctx: click.Context, checkpoint_path: str, split: str) -> None:
    """Evaluate a checkpoint on its config's target validation or test split (override e.g. --data.target_val.root=...)."""
    from lsdseg import checkpoint
    from lsdseg.evaluate import evaluate_checkpoint

    state = checkpoint.load(checkpoint_path)
    result = evaluate_checkpoint(state, f"target_{split}", _overrides(ctx))
    ev = result.evaluation
    click.echo(f"target mIoU ({len(ev.per_class_iou)} classes) on {result.split}, {result.images} images, "
               f"checkpoint step {result.step}: {ev.miou * 100:.1f}")
    click.echo(_also_lines(result.also) + _iou_table(ev.per_class_iou))


@main.command(context_settings=EXTRA, epilog=OVERRIDES)
@click.option("--config", "config_paths", multiple=True, help=CONFIG_HELP)
@click.pass_context
@one_line_errors
def config(ctx: click.Context, config_paths: tuple[str, ...]) -> None:
    """Print the resolved config (defaults < YAML file < overrides): every valid key."""
    import yaml

    cfg = load_config(config_paths, _overrides(ctx))
    click.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False), nl=False)


@main.command()
@click.argument("sweep_ref", metavar="SWEEP")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for report.html and its PNGs (default: SWEEP/report).")
@click.option("--examples", type=click.IntRange(1, 32), default=4, show_default=True, help="Target images in the example grid.")
@one_line_errors
@platform_command
def report(sweep_ref: str, out_dir: str | None, examples: int) -> None:
    """Write a sweep's HTML report (leaderboard, confirmation on fresh seeds, history, fANOVA importance,
    parallel coordinates, per-class IoU, target examples) and log it to the sweep's parent MLflow run.
    SWEEP: a sweep folder or name."""
    from lsdseg.sweep.report.build import write_report

    html = write_report(sweep_ref, Path(out_dir) if out_dir else None, examples)
    click.echo(f"report: {html}  (also logged to the sweep's MLflow run under report/)")


@main.command()
@click.option("--checkpoint", "checkpoint_path", required=True, type=click.Path(dir_okay=False),
              help="A checkpoint written by `lsdseg train` or a sweep.")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for <image>_seg.png and <image>_overlay.png.")
@click.option("--overwrite", is_flag=True, help="Replace outputs already in --out (else they are refused, before anything is written).")
@one_line_errors
def predict(checkpoint_path: str, images: tuple[str, ...], out_dir: str, overwrite: bool) -> None:
    """Segment IMAGES with a checkpoint: Cityscapes-coloured label maps and overlays."""
    from lsdseg.predict import predict_files

    written = predict_files(checkpoint_path, images, out_dir, overwrite=overwrite)
    click.echo(f"{len(written)} files for {len(images)} images in {out_dir}")


@main.command()
@click.argument("sweep_ref", metavar="SWEEP")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="YAML file for the best trial's full config.")
@click.option("--register", "model_name", default=None,
              help="Also register the best checkpoint in MLflow's model registry under this name.")
@click.option("--alias", default="champion", show_default=True,
              help="With --register: the alias the new version takes (moved from an older version that had it).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (else it is refused).")
@one_line_errors
@platform_command
def export(sweep_ref: str, out_path: str, model_name: str | None, alias: str, overwrite: bool) -> None:
    """Write the best trial's full config (retrain: lsdseg train --config OUT); optionally register its checkpoint."""
    from lsdseg.sweep.export import check_alias, export_config, register_best
    from lsdseg.sweep.results import SweepResults

    if model_name:
        check_alias(alias)
    results = SweepResults(sweep_ref)
    click.echo(f"config of the best trial: {export_config(results, Path(out_path), overwrite)}  "
               f"(retrain: lsdseg train --config {out_path})")
    if model_name:
        version = register_best(results, model_name, alias)
        click.echo(f"registered model {version.name!r} version {version.version} as @{alias} "
                   f"(models:/{version.name}@{alias}; it loads without lsdseg installed)")


if __name__ == "__main__":
    main()
