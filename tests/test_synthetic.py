"""The built-in synthetic sim->real benchmark: determinism, layout, cache and the two styles."""
from __future__ import annotations

import numpy as np
import pytest

from lsdseg.data.base import DataError, RandomCrop
from lsdseg.data.synthetic import CLASSES, SPLITS, ensure_benchmark, read_label, render, samples, train_transform

pytestmark = pytest.mark.unit

SIZE = 8


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    calls = []
    root = ensure_benchmark(tmp_path_factory.mktemp("cache"), seed=3, size=SIZE, progress=lambda d, t: calls.append((d, t)))
    return root, calls


def test_render_is_deterministic_and_well_formed():
    for split in SPLITS:
        a_img, a_lab = render(1, split, 5)
        b_img, b_lab = render(1, split, 5)
        assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
        assert a_img.shape == (80, 160, 3) and a_img.dtype == np.uint8
        assert a_lab.shape == (80, 160) and a_lab.dtype == np.uint8
        assert set(np.unique(a_lab)) <= set(CLASSES)
    img, lab = render(1, "source_train", 0, height=40, width=96)
    assert img.shape == (40, 96, 3) and lab.shape == (40, 96)


def test_scenes_differ_by_seed_split_and_index():
    _, base = render(0, "source_train", 0)
    for other in (render(1, "source_train", 0), render(0, "source_val", 0), render(0, "source_train", 1)):
        assert not np.array_equal(base, other[1])


def test_classes_appear():
    counts = np.zeros(256, np.int64)
    for i in range(10):
        counts += np.bincount(render(0, "target_train", i)[1].ravel(), minlength=256)
    assert all(counts[c] > 0 for c in CLASSES)


def test_styles_differ():
    src, tgt = [], []
    for i in range(6):
        for split, out in (("source_train", src), ("target_train", tgt)):
            img, lab = render(0, split, i)
            out.append(img[lab == 0].reshape(-1, 3).astype(np.float64))
    gap = np.abs(np.concatenate(src).mean(0) - np.concatenate(tgt).mean(0)).max()
    assert gap > 30  # mean road colour differs clearly between the domains


def test_ensure_benchmark_layout_and_reuse(bench, tmp_path):
    root, calls = bench
    assert root.name == f"synthetic-v2-seed3-n{SIZE}-80x160"
    assert calls[-1] == (len(SPLITS) * SIZE, len(SPLITS) * SIZE) and len(calls) == len(SPLITS) * SIZE
    for split in SPLITS:
        names = sorted(p.name for p in (root / split).iterdir())
        assert names == sorted(f"{i:05d}_{kind}.png" for i in range(SIZE) for kind in ("image", "label"))
    assert not list(root.parent.glob("*.tmp"))
    stamp = (root / "target_val" / "00000_image.png").stat().st_mtime_ns
    again = []
    assert ensure_benchmark(root.parent, seed=3, size=SIZE, progress=lambda d, t: again.append(d)) == root
    assert again == [] and (root / "target_val" / "00000_image.png").stat().st_mtime_ns == stamp


def test_samples_pair_files_and_match_render(bench):
    root, _ = bench
    for split in SPLITS:
        pairs = samples(root, split)
        assert len(pairs) == SIZE
        for s in pairs:
            assert s.label is not None and s.image.name[:5] == s.label.name[:5]
    last = samples(root, "source_val")[-1]
    img, lab = render(3, "source_val", SIZE - 1)
    assert np.array_equal(read_label(last.label), lab)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(last.image).convert("RGB")), img)


def test_unknown_split_and_broken_files(bench, tmp_path):
    root, _ = bench
    with pytest.raises(DataError, match="unknown"):
        samples(root, "train")
    with pytest.raises(DataError):
        render(0, "nope", 0)
    with pytest.raises(DataError):
        samples(tmp_path, "source_train")
    bad = tmp_path / "bad_label.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError):
        read_label(bad)


def test_train_transform_crops():
    t = train_transform(64, 128)
    assert isinstance(t, RandomCrop)
    from PIL import Image

    img, lab = render(0, "source_train", 0)
    out, crop = t(Image.fromarray(img), lab, np.random.default_rng(0))
    assert out.size == (128, 64) and crop.shape == (64, 128)
