"""The built-in benchmark: deterministic, cached once, both styles over the same classes, real format."""
from __future__ import annotations

import numpy as np
import pytest

from lsdseg.data import synthetic
from lsdseg.data.base import DataError


def test_render_is_a_pure_function_of_its_arguments():
    a, b = synthetic.render(3, "target_train", 5), synthetic.render(3, "target_train", 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], synthetic.render(3, "target_train", 6)[0])
    image, label = a
    assert image.shape == (80, 160, 3) and image.dtype == np.uint8 and label.shape == (80, 160) and label.dtype == np.uint8
    assert set(np.unique(label)) <= set(synthetic.CLASSES)


def test_every_class_appears_in_both_domains():
    for domain in ("source_train", "target_train"):
        seen = set()
        for i in range(12):
            seen |= set(np.unique(synthetic.render(0, domain, i)[1]).tolist())
        assert seen == set(synthetic.CLASSES), domain


def test_the_styles_differ_over_the_same_classes():
    """Mean colour of each class differs clearly between the domains: an appearance gap, not a label gap."""
    def class_means(split):
        sums = {c: [] for c in synthetic.CLASSES}
        for i in range(20):
            image, label = synthetic.render(0, split, i)
            for c in synthetic.CLASSES:
                if (label == c).any():
                    sums[c].append(image[label == c].mean(0))
        return {c: np.mean(v, 0) for c, v in sums.items()}
    src, tgt = class_means("source_train"), class_means("target_train")
    distances = [np.abs(src[c] - tgt[c]).sum() for c in synthetic.CLASSES]
    assert np.median(distances) > 40


def test_cache_is_written_once_in_the_expected_layout(tmp_path):
    calls = []
    root = synthetic.ensure_benchmark(tmp_path, seed=1, size=3, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (12, 12)
    stamp = (root / "target_val" / "00002_label.png").stat().st_mtime_ns
    assert synthetic.ensure_benchmark(tmp_path, seed=1, size=3) == root
    assert (root / "target_val" / "00002_label.png").stat().st_mtime_ns == stamp
    pairs = synthetic.samples(root, "source_train")
    assert [p.image.name for p in pairs] == ["00000_image.png", "00001_image.png", "00002_image.png"]
    label = synthetic.read_label(pairs[0].label)
    assert np.array_equal(label, synthetic.render(1, "source_train", 0)[1])
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_split_and_damaged_cache_are_one_line_errors(tmp_path):
    root = synthetic.ensure_benchmark(tmp_path, seed=2, size=2)
    with pytest.raises(DataError, match="unknown split"):
        synthetic.samples(root, "train")
    (root / "source_val" / "00001_label.png").unlink()
    with pytest.raises(DataError, match="has no label file") as err:
        synthetic.samples(root, "source_val")
    assert "\n" not in str(err.value)
