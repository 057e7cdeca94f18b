"""Early-stopping strategies: the offline replay says what each would have done, and says what Ray does."""
from __future__ import annotations

import numpy as np
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler, async_hyperband

from lsdseg.sweep.stopping import STRATEGIES, StopVerdict, make_scheduler, replay, winner_verdict

pytestmark = pytest.mark.unit

# rf 3 from grace 2 to max_t 18: rungs at 2, 6 and 18 (ASHA); HyperBand's brackets start at 2, 6 and 18
RULE = {"max_t": 18, "grace_period": 2, "reduction_factor": 3}
STEPS = range(2, 19, 2)


def _curve(start: float, end: float) -> list[tuple[int, float]]:
    """A curve rising linearly from `start` at step 2 to `end` at step 18."""
    return [(s, start + (end - start) * (s - 2) / 16) for s in STEPS]


# three fast starters that plateau, then the eventual winner: slow at first, best at the end
SLOW_WINNER = {"a": _curve(0.50, 0.60), "b": _curve(0.55, 0.62), "c": _curve(0.60, 0.65), "w": _curve(0.10, 0.90)}
# the same trials, the winner started first: nothing recorded at its rungs yet, so nothing to fall short of
FIRST_WINNER = {"w": SLOW_WINNER["w"], **{k: v for k, v in SLOW_WINNER.items() if k != "w"}}


def test_asha_stops_a_slow_starting_winner_at_the_grace_step():
    verdicts = replay("asha", SLOW_WINNER, **RULE)
    assert verdicts["w"] == StopVerdict(stopped_at=2, probability=1.0)
    assert [verdicts[k].stopped_at for k in "abc"] == [None, None, None]  # each fast starter reaches the cutoff of those before it
    sentence = winner_verdict("asha", SLOW_WINNER, "w", **RULE)
    assert sentence == "ASHA replayed on the full curves of the 4 completed trials would have stopped the winner (trial w) at iteration 2"


def test_asha_does_not_stop_a_winner_that_started_first():
    assert replay("asha", FIRST_WINNER, **RULE)["w"] == StopVerdict(stopped_at=None, probability=0.0)
    assert "would not have stopped the winner (trial w)" in winner_verdict("asha", FIRST_WINNER, "w", **RULE)


def test_a_longer_grace_spares_the_slow_starter_at_the_first_rung():
    # grace 4: the first rung is at 4, then 12; the winner is still behind at 4 and is stopped there
    assert replay("asha_patient", SLOW_WINNER, **RULE)["w"].stopped_at == 4
    assert "ASHA with a doubled grace period" in winner_verdict("asha_patient", SLOW_WINNER, "w", **RULE)


def test_hyperband_stops_a_slow_starter_with_a_probability_below_one():
    verdict = replay("hyperband", SLOW_WINNER, **RULE)["w"]
    assert verdict.stopped_at == 2  # in the most aggressive bracket
    assert 0 < verdict.probability < 1  # the last bracket decides only at max_t: it never stops early
    weights = np.e ** np.array([0, -1])  # rung counts 3, 2, 1: a softmax over them, the last bracket left out
    assert verdict.probability == pytest.approx(weights.sum() / (np.e ** np.array([0, -1, -2])).sum())
    sentence = winner_verdict("hyperband", SLOW_WINNER, "w", **RULE)
    assert sentence.endswith("would have stopped the winner (trial w) in 2 of 3 brackets (probability 0.91)")


def test_none_never_stops():
    assert all(v == StopVerdict(None, 0.0) for v in replay("none", SLOW_WINNER, **RULE).values())
    assert "none of the 4 completed trials would have been stopped" in winner_verdict("none", SLOW_WINNER, "w", **RULE)
    assert isinstance(make_scheduler("none", metric="miou", mode="max", **RULE), FIFOScheduler)


def test_mode_min_ranks_lower_values_first():
    losses = {k: [(s, -v) for s, v in curve] for k, curve in SLOW_WINNER.items()}
    for strategy in STRATEGIES:
        assert replay(strategy, losses, mode="min", **RULE) == replay(strategy, SLOW_WINNER, **RULE)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="pick one of asha, hyperband, asha_patient, pbt, none"):
        replay("median", SLOW_WINNER, **RULE)


# --- the replay against Ray's own scheduler -------------------------------------------------------------

RANDOM_RULE = {"max_t": 30, "grace_period": 2, "reduction_factor": 3}


def _random_curves(seed: int, n: int = 20) -> dict[str, list[tuple[int, float]]]:
    """Noisy rising curves on coarse and fine evaluation schedules (a coarse one skips rungs, which Ray
    fills from later results), some ending early as a diverged run does."""
    rng = np.random.default_rng(seed)
    curves = {}
    for i in range(n):
        every = int(rng.choice([1, 2, 5, 7, 10]))
        end = int(rng.choice([RANDOM_RULE["max_t"], rng.integers(every, RANDOM_RULE["max_t"] + 1)]))
        steps = list(range(every, end + 1, every))
        ceiling, speed = rng.uniform(0.3, 0.9), rng.uniform(0.05, 0.5)
        curves[f"t{i}"] = [(s, ceiling * (1 - np.exp(-speed * s)) + rng.normal(0, 0.02)) for s in steps]
    return curves


def _ray_stops(scheduler, curves, max_t: int, metric_sign: float) -> dict[str, int | None]:
    """Feed the curves to a real Ray scheduler a trial at a time, calling it as Tune's controller does:
    on_trial_add, on_trial_result per result until STOP, on_trial_complete with the last result."""
    stops = {}
    for key, curve in curves.items():
        trial = Trial("__fake", stub=True)
        scheduler.on_trial_add(None, trial)
        stops[key] = None
        for step, value in curve:
            last = {"step": step, "miou": metric_sign * value}
            if scheduler.on_trial_result(None, trial, last) == TrialScheduler.STOP:
                stops[key] = step if step < max_t else None  # a stop at max_t is the end, not early stopping
                break
        scheduler.on_trial_complete(None, trial, last)
    return stops


@pytest.mark.parametrize("seed", [7, 8, 9])
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("strategy", ["asha", "asha_patient"])
def test_replay_matches_rays_asha_decisions(strategy, mode, seed):
    curves = _random_curves(seed)
    sign = 1.0 if mode == "max" else -1.0
    signed = {k: [(s, sign * v) for s, v in c] for k, c in curves.items()}
    scheduler = make_scheduler(strategy, metric="miou", mode=mode, **RANDOM_RULE)
    expected = _ray_stops(scheduler, curves, RANDOM_RULE["max_t"], sign)
    assert 0 < sum(s is not None for s in expected.values()) < len(curves)  # the comparison means something
    verdicts = replay(strategy, signed, mode=mode, **RANDOM_RULE)
    assert {k: v.stopped_at for k, v in verdicts.items()} == expected


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_replay_matches_rays_hyperband_per_bracket(monkeypatch, seed):
    """Ray draws a trial's bracket with np.random.choice; forcing the draw replays each bracket in Ray."""
    curves = _random_curves(seed)
    per_bracket, weights = [], []
    for s in range(3):
        def choose(n, p, s=s):
            weights[:] = list(p)
            return s
        monkeypatch.setattr(async_hyperband.np.random, "choice", choose)
        scheduler = make_scheduler("hyperband", metric="miou", mode="max", **RANDOM_RULE)
        per_bracket.append(_ray_stops(scheduler, curves, RANDOM_RULE["max_t"], 1.0))
    monkeypatch.undo()  # the replay's own one-bracket schedulers draw their only bracket
    verdicts = replay("hyperband", curves, **RANDOM_RULE)
    for key, verdict in verdicts.items():
        stops = [b[key] for b in per_bracket]
        assert verdict.stopped_at == next((x for x in stops if x is not None), None)
        assert verdict.probability == pytest.approx(sum(w for w, x in zip(weights, stops, strict=False) if x is not None))
    assert any(0 < v.probability < 1 for v in verdicts.values())
