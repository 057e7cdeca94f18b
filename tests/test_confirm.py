"""The declared winner under each --select rule, and the other rule's choice the leaderboard shows."""
from __future__ import annotations

import math

from lsdseg.sweep.confirm import Candidate, Confirmed, other_rule, winner

DEFAULTS = Confirmed(Candidate(0, 0, {}), {0: 0.680, 1: 0.682, 2: 0.684}, None)
# the source-mIoU sweep of the README: trial 1 has the best mean, trial 6 the best mean minus std
TRIAL_1 = Confirmed(Candidate(1, 1, {}), {0: 0.716, 1: 0.685, 2: 0.721}, None)
TRIAL_6 = Confirmed(Candidate(2, 6, {}), {0: 0.694, 1: 0.702, 2: 0.707}, None)
UNFINISHED = Confirmed(Candidate(3, 4, {}), {0: 0.90, 1: math.nan, 2: 0.90}, None)


def test_each_rule_declares_its_own_winner_and_names_the_other():
    confirmed = [DEFAULTS, TRIAL_1, TRIAL_6, UNFINISHED]
    assert winner(confirmed, "mean") is TRIAL_1 and winner(confirmed, "lower") is TRIAL_6
    assert other_rule(confirmed, "mean") == ("lower", TRIAL_6)
    assert other_rule(confirmed, "lower") == ("mean", TRIAL_1)


def test_no_other_choice_when_the_rules_agree_or_nothing_completed():
    assert other_rule([DEFAULTS, TRIAL_6], "mean") is None
    assert other_rule([UNFINISHED], "mean") is None
