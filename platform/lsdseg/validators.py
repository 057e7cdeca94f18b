"""Label-free validators: how good is an adapted model on the target domain, judged without target labels.

In real sim-to-real work the target has no labels, so choosing a checkpoint or a configuration by target
mIoU is choosing on the test set. These scores use only target images (and the labelled source validation
split). None is reliable everywhere (Musgrave, Belongie, Lim, "Three New Validators and a Large-Scale
Benchmark Ranking for Unsupervised Domain Adaptation", arXiv 2208.07360): `lsdseg report` measures how
well each tracks target mIoU on a problem that has target labels.

Each is a pure function of per-pixel softmax outputs, features and losses, flattened to rows (one row per
sampled pixel). pytorch-adapt implements the same validators for classification; it is not used because it
pins torchmetrics 0.9.3 and pytorch-metric-learning 1.6.3 exactly and its DEV trains through ignite.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def _row_entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def entropy(probs: torch.Tensor) -> float:
    """Mean per-pixel prediction entropy on the target (nats); lower is better: a confident model. Used as a
    validator since Morerio, Cavazza, Murino, "Minimal-Entropy Correlation Alignment for Unsupervised Deep
    Domain Adaptation", ICLR 2018. `probs`: N x C rows of softmax outputs."""
    return float(_row_entropy(probs.double()).mean())


def information_maximisation(probs: torch.Tensor) -> float:
    """Information maximisation (Shi and Sha, "Information-Theoretical Learning of Discriminative Clusters
    for Unsupervised Domain Adaptation", ICML 2012; SHOT, Liang, Hu, Feng, ICML 2020): the entropy of the
    mean prediction minus the mean per-pixel entropy. Higher is better: confident per pixel, yet diverse
    over the classes (a model predicting one class everywhere scores 0)."""
    p = probs.double()
    return float(_row_entropy(p.mean(0)) - _row_entropy(p).mean())


def soft_neighbourhood_density(probs: torch.Tensor, temperature: float = 0.05) -> float:
    """Soft neighbourhood density (Saito, Kim, Teterwak, Sclaroff, Darrell, Saenko, "Tune it the Right Way:
    Unsupervised Validation of Domain Adaptation via Soft Neighborhood Density", ICCV 2021): the softmax
    outputs of sampled target pixels, L2-normalised; each row's cosine similarities to the others (itself
    left out), softened by a softmax at `temperature`; the mean entropy of those rows. Higher is better:
    target points sit in dense neighbourhoods of similar predictions."""
    x = torch.nn.functional.normalize(probs.double(), dim=1)
    sim = x @ x.T
    sim.fill_diagonal_(-math.inf)
    return float(_row_entropy(torch.softmax(sim / temperature, dim=1)).mean())


def deep_embedded_validation(source_features: np.ndarray, source_losses: np.ndarray, target_features: np.ndarray,
                             seed: int = 0) -> float:
    """Deep embedded validation (You, Wang, Long, Jordan, "Towards Accurate Model Selection in Deep
    Unsupervised Domain Adaptation", ICML 2019): the source validation loss, importance-weighted by the
    density ratio w(x) = p_target(x) / p_source(x) of F's features, which a domain classifier estimates,
    with the paper's control variate. An estimate of the target loss: lower is better.

    The classifier (logistic regression on standardised features) is fitted on half of the source rows and
    all target rows; w is evaluated on the other half of the source rows, where the losses are averaged."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(source_features))
    fit, held = order[: len(order) // 2], order[len(order) // 2:]
    x = np.concatenate([source_features[fit], target_features])
    y = np.concatenate([np.zeros(len(fit)), np.ones(len(target_features))])
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(max_iter=1000).fit(scaler.transform(x), y)
    p_target = classifier.predict_proba(scaler.transform(source_features[held]))[:, 1]
    w = (len(fit) / len(target_features)) * p_target / np.clip(1 - p_target, 1e-12, None)
    weighted = w * source_losses[held]
    var = float(np.var(w, ddof=1))
    # the control variate: w has expectation 1 under the source, so eta (mean(w) - 1) cancels its noise
    eta = -float(np.cov(weighted, w, ddof=1)[0, 1]) / var if var > 1e-12 else 0.0
    return float(weighted.mean() + eta * w.mean() - eta)
