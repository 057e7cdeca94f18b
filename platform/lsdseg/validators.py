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
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

REGULARISATION = (0.01, 0.1, 1.0, 10.0)  # the domain classifier's inverse regularisation strengths, tried in order
MAX_WEIGHT = 10.0  # no source row counts for more than ten average ones


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


def _image_split(images: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A mask over rows that selects about `share` of the distinct images, every row of an image together."""
    distinct = np.unique(images)
    chosen = rng.permutation(distinct)[: max(1, round(share * len(distinct)))]
    return np.isin(images, chosen)


def _regularisation(x: np.ndarray, y: np.ndarray, images: np.ndarray, rng: np.random.Generator) -> float:
    """The domain classifier's C, chosen by balanced accuracy on a quarter of the images held out from its
    fit (as the DEV paper and pytorch-adapt choose their classifier's weight decay); ties go to the stronger
    regularisation."""
    held = _image_split(images, 0.25, rng)
    if len(set(y[held])) < 2 or len(set(y[~held])) < 2:  # a handful of images (tests): nothing to choose on
        return 1.0
    accuracy = [balanced_accuracy_score(y[held], _classifier(x[~held], y[~held], c).predict(x[held])) for c in REGULARISATION]
    return REGULARISATION[int(np.argmax(accuracy))]


def _classifier(x: np.ndarray, y: np.ndarray, c: float) -> Pipeline:
    """Logistic regression on standardised features telling target (1) from source (0) rows."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(x, y)


def importance_weights(p_target: np.ndarray) -> np.ndarray:
    """Density ratios p_target(x) / p_source(x) from a domain classifier's P(target | x), normalised to mean 1
    (which also removes the class-prior factor n_source / n_target) and clipped at MAX_WEIGHT."""
    p = np.clip(p_target, 1e-6, 1 - 1e-6)
    odds = p / (1 - p)
    return np.minimum(odds / odds.mean(), MAX_WEIGHT)


def deep_embedded_validation(source_features: np.ndarray, source_losses: np.ndarray, source_images: np.ndarray,
                             target_features: np.ndarray, target_images: np.ndarray, seed: int = 0) -> float:
    """Deep embedded validation (You, Wang, Long, Jordan, "Towards Accurate Model Selection in Deep
    Unsupervised Domain Adaptation", ICML 2019): the source validation loss, importance-weighted by the
    density ratio w(x) = p_target(x) / p_source(x) of F's features, which a domain classifier estimates,
    with the paper's control variate. An estimate of the target loss: lower is better.

    Rows are pixels, and the pixels of one image are alike, so every split is by image (rows of one image on
    both sides would let the classifier memorise them): the source images are halved, each half is weighted
    by a classifier fitted on the target rows and the other half (cross-fitting, so that every source row
    counts once), and the losses are averaged over both. The classifier's regularisation is chosen once, on
    held-out images (`_regularisation`). The weights are normalised to mean 1 and clipped at MAX_WEIGHT (as
    pytorch-adapt normalises them): a classifier that separates the domains almost perfectly would otherwise
    give a few rows weights of thousands, and the estimate would jump between consecutive checkpoints of one
    run (bench/dev_stability.py measures it)."""
    rng = np.random.default_rng(seed)
    first = _image_split(source_images, 0.5, rng)
    y = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    images = np.concatenate([source_images, target_images + source_images.max() + 1])  # one id space
    c = None
    w = np.empty(len(source_features))
    for weighted in (first, ~first):  # cross-fitting: each half weighted by a classifier fitted on the other
        fit = np.concatenate([~weighted, np.ones(len(target_features), dtype=bool)])
        x = np.concatenate([source_features, target_features])
        if c is None:
            c = _regularisation(x[fit], y[fit], images[fit], rng)
        w[weighted] = importance_weights(_classifier(x[fit], y[fit], c).predict_proba(source_features[weighted])[:, 1])
    weighted = w * source_losses
    var = float(np.var(w, ddof=1))
    # the control variate: w has expectation 1 under the source, so eta (mean(w) - 1) cancels its noise
    eta = -float(np.cov(weighted, w, ddof=1)[0, 1]) / var if var > 1e-12 else 0.0
    return float(weighted.mean() + eta * w.mean() - eta)
