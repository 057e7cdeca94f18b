"""The sweep's closing summary: top trials, references, best checkpoint, how to open MLflow."""
from __future__ import annotations

from lsdseg.sweep.runner import SweepOutcome


def _short(name: str) -> str:
    return name.split(".", 1)[-1]


def render(outcome: SweepOutcome, top: int = 10) -> str:
    rows = outcome.rows[:top]
    keys = sorted({k for r in rows for k in r.params})
    head = f"{'#':>2} {'optuna':>6} {'status':<9} {'iters':>5} {'mIoU':>5} {'best':>5}  " + " ".join(f"{_short(k):>10}" for k in keys)
    lines = [f"sweep {outcome.folder.name}: {len(outcome.rows)} trials, top {len(rows)} by final target mIoU (%)", head]
    for i, r in enumerate(rows, 1):
        values = " ".join(f"{r.params[k]:>10.3g}" if isinstance(r.params.get(k), float) else f"{str(r.params.get(k, '-')):>10}" for k in keys)
        lines.append(f"{i:>2} {str(r.optuna_number):>6} {r.status:<9} {r.steps:>5} {r.miou * 100:5.1f} {r.best_miou * 100:5.1f}  {values}")
    refs = outcome.references
    if refs:
        lines.append("references: " + ", ".join(f"{k.replace('_', ' ')} {v * 100:.1f}" for k, v in refs.items())
                     + "  (default weights = optuna trial 0)")
    if outcome.best is not None:
        copy = outcome.folder / "best_checkpoint" / "checkpoint.pt"  # runner's local copy, also from s3://
        lines.append(f"best checkpoint: {copy if copy.is_file() else outcome.best.checkpoint}")
    lines.append(f"sweep folder: {outcome.folder}   (resume: lsdseg sweep --resume {outcome.folder})")
    if outcome.tracking_uri.startswith("http"):  # a tracking server, e.g. the cluster head's, reached by tunnel
        lines.append(f"compare trials: open {outcome.tracking_uri} in a browser")
    else:
        lines.append(f"compare trials: mlflow ui --backend-store-uri {outcome.tracking_uri}   (serves on 127.0.0.1:5000)")
    return "\n".join(lines)
