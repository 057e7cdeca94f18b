"""The GTA5, SYNTHIA and Cityscapes readers, on tiny trees written in the real file formats."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lsdseg.data import cityscapes, gta5, synthetic, synthia
from lsdseg.data.base import DataError, RandomCrop, SegmentationDataset, check_pairs
from lsdseg.data.labels import IGNORE

pytestmark = pytest.mark.unit

CROP_H, CROP_W = 16, 32


def write_palette(path: Path, ids: np.ndarray) -> None:
    img = Image.fromarray(ids.astype(np.uint8), "P")
    img.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    img.save(path)


def write_gray(path: Path, ids: np.ndarray) -> None:
    Image.fromarray(ids.astype(np.uint8), "L").save(path)


def write_synthia(path: Path, ids: np.ndarray) -> None:
    # cv2 writes BGR: the class id goes to index 2 (R); B and G get decoys so a wrong channel shows.
    raw = np.stack([np.full_like(ids, 21), np.full_like(ids, 1234), ids], axis=-1).astype(np.uint16)
    assert cv2.imwrite(str(path), raw)


@dataclass(frozen=True)
class Layout:
    module: ModuleType
    image: str  # path patterns relative to the root, filled with the stem
    label: str
    write_label: Callable[[Path, np.ndarray], None]
    size: tuple[int, int]  # width, height: room for the module's crop scheme at CROP_H x CROP_W
    stems: tuple[str, ...]  # a few stems of the "train" split
    subdir: str  # a folder samples() requires
    valid_id: int  # a raw id that maps to a train id

    def build(self, root: Path, stems=None, ids: np.ndarray | None = None) -> None:
        w, h = self.size
        for i, stem in enumerate(stems or self.stems):
            image, label = root / self.image.format(stem), root / self.label.format(stem)
            image.parent.mkdir(parents=True, exist_ok=True)
            label.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image)
            self.write_label(label, np.full((h, w), self.valid_id) if ids is None else ids)


LAYOUTS = {
    "gta5": Layout(gta5, "images/{}.png", "labels/{}.png", write_palette, (96, 48), ("00001", "00002", "00003"),
                   "labels", 7),
    "synthia": Layout(synthia, "RGB/{}.png", "GT/LABELS/{}.png", write_synthia, (96, 48),
                      ("0000000", "0000001", "0000002"), "GT/LABELS", 3),
    "cityscapes": Layout(cityscapes, "leftImg8bit/{}_leftImg8bit.png", "gtFine/{}_gtFine_labelIds.png", write_gray,
                         (128, 96), ("train/aachen/aachen_000000_000019", "train/bremen/bremen_000000_000019"),
                         "gtFine/train", 7),
}

SPLITS = [
    ("gta5", ["00001", "15188", "17705", "20801", "20860", "23999", "24000", "24966", "00002"],
     {"train": ["00001", "00002", "23999"], "val": ["24000", "24966"]}),
    ("synthia", ["0009300", "0000000", "0009299", "0009399"],
     {"train": ["0000000", "0009299"], "val": ["0009300", "0009399"]}),
    ("cityscapes", ["train/zurich/zurich_000000_000019", "train/aachen/aachen_000001_000019",
                    "train/aachen/aachen_000000_000019", "val/lindau/lindau_000000_000019"],
     {"train": ["train/aachen/aachen_000000_000019", "train/aachen/aachen_000001_000019",
                "train/zurich/zurich_000000_000019"], "val": ["val/lindau/lindau_000000_000019"]}),
]


@pytest.mark.parametrize("name,stems,expected", SPLITS, ids=[s[0] for s in SPLITS])
def test_splits_pair_and_sort(tmp_path, name, stems, expected):
    layout = LAYOUTS[name]
    layout.build(tmp_path, stems, np.zeros((layout.size[1], layout.size[0]), int))
    if name != "cityscapes":
        expected = {**expected, "all": sorted(stems)}
    for split, want in expected.items():
        got = layout.module.samples(tmp_path, split)
        assert [s.image for s in got] == [tmp_path / layout.image.format(stem) for stem in want], split
        assert [s.label for s in got] == [tmp_path / layout.label.format(stem) for stem in want], split


MAPPINGS = [
    ("gta5", [7, 26, 0, 33, 255, 34], [0, 13, IGNORE, 18, IGNORE, IGNORE]),
    ("cityscapes", [7, 26, 0, 33, 255, 34], [0, 13, IGNORE, 18, IGNORE, IGNORE]),
    ("synthia", [8, 16, 3, 0, 8 + 256, 21], [13, IGNORE, 0, IGNORE, IGNORE, 3]),
]


@pytest.mark.parametrize("name,raw,train_ids", MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_label_mapping(tmp_path, name, raw, train_ids):
    path = tmp_path / "label.png"
    LAYOUTS[name].write_label(path, np.array([raw, raw[::-1]]))
    label = LAYOUTS[name].module.read_label(path)
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, np.array([train_ids, train_ids[::-1]], dtype=np.uint8))


def test_gta5_reads_gray_labels_too(tmp_path):
    write_gray(tmp_path / "l.png", np.array([[7, 26]]))
    np.testing.assert_array_equal(gta5.read_label(tmp_path / "l.png"), [[0, 13]])


def make_dataset(layout: Layout, root: Path, transform=None, ids=None) -> SegmentationDataset:
    layout.build(root, ids=ids)
    transform = transform or layout.module.train_transform(CROP_H, CROP_W)
    return SegmentationDataset(layout.module.samples(root, "train"), layout.module.read_label, transform)


@pytest.mark.parametrize("name", LAYOUTS)
def test_train_items_are_seeded_crops(tmp_path, name):
    data = make_dataset(LAYOUTS[name], tmp_path)
    item = data[(1, 5)]
    assert item["image"].shape == (3, CROP_H, CROP_W) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["label"].shape == (CROP_H, CROP_W) and item["label"].dtype == torch.int64
    assert (item["label"] == 0).all()  # every layout's valid_id is road
    assert torch.equal(data[(1, 5)]["image"], item["image"])
    assert any(not torch.equal(data[(1, seed)]["image"], item["image"]) for seed in range(6, 12))


def test_a_resized_crop_resamples_the_image_with_lanczos_as_the_public_code(tmp_path):
    """GTA5's images are resized to twice the crop width before cropping, with LANCZOS as the public code
    did; the label with NEAREST (its ids must not mix)."""
    data = make_dataset(LAYOUTS["gta5"], tmp_path)
    crop = RandomCrop(CROP_H, CROP_W, resize_width=2 * CROP_W)
    image, label = data.load(0)
    out, _ = crop(image, label, np.random.default_rng(3))
    lanczos = image.resize((2 * CROP_W, round(image.height * 2 * CROP_W / image.width)), Image.LANCZOS)
    found = [(x, y) for y in range(lanczos.height - CROP_H + 1) for x in range(lanczos.width - CROP_W + 1)
             if np.array_equal(np.asarray(lanczos.crop((x, y, x + CROP_W, y + CROP_H))), np.asarray(out))]
    assert found


def test_gta5_crops_hold_a_valid_label_when_needed(tmp_path):
    w, h = LAYOUTS["gta5"].size
    ids = np.zeros((h, w), int)
    ids[:, :24] = 7  # road in the left quarter only: about half of the crops miss it
    valid = make_dataset(LAYOUTS["gta5"], tmp_path, ids=ids)
    blind = SegmentationDataset(valid.samples, valid.read_label, RandomCrop(CROP_H, CROP_W, resize_width=2 * CROP_W))
    seeds = range(20)
    assert all((valid[(0, s)]["label"] != IGNORE).any() for s in seeds)
    assert not all((blind[(0, s)]["label"] != IGNORE).any() for s in seeds)


def break_tree(layout: Layout, root: Path, case: str) -> tuple[Path, str, Path]:
    """Spoils a built tree; returns (root to read, split, the path the error must name)."""
    first = layout.stems[0]
    if case == "no root":
        return root / "missing", "train", root / "missing"
    if case == "no folder":
        shutil.rmtree(root / layout.subdir)
        return root, "train", root / layout.subdir
    if case == "no label":
        (root / layout.label.format(first)).unlink()
        return root, "train", root / layout.image.format(first)
    if case == "empty split":
        for stem in layout.stems:
            (root / layout.image.format(stem)).unlink()
        return root, "train", root
    return root, "training", root  # unknown split


@pytest.mark.parametrize("case", ["no root", "no folder", "no label", "empty split", "unknown split"])
@pytest.mark.parametrize("name", LAYOUTS)
def test_samples_errors_name_the_path(tmp_path, name, case):
    layout = LAYOUTS[name]
    layout.build(tmp_path)
    root, split, culprit = break_tree(layout, tmp_path, case)
    with pytest.raises(DataError) as err:
        layout.module.samples(root, split)
    assert "\n" not in str(err.value) and str(culprit) in str(err.value)


def rgb_png(path, h=4, w=4):
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


WRONG_LABELS = [
    ("gta5", rgb_png),
    ("gta5", lambda p: Image.fromarray(np.zeros((4, 4), np.uint16)).save(p)),  # 16-bit gray
    ("cityscapes", lambda p: Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(p)),  # *_color.png
    ("synthia", lambda p: cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8))),  # 8-bit colour
    ("synthia", lambda p: cv2.imwrite(str(p), np.zeros((4, 4), np.uint16))),  # single channel
    *[(name, lambda p: p.write_bytes(b"not a png")) for name in LAYOUTS],
]


@pytest.mark.parametrize("reader", ["read_label", "label_size"])
@pytest.mark.parametrize("name,write", WRONG_LABELS)
def test_wrong_label_kind_is_reported(tmp_path, name, write, reader):
    """By the read, and by the up-front scan from the header alone: it refuses what reading would refuse."""
    path = tmp_path / "label.png"
    write(path)
    with pytest.raises(DataError) as err:
        getattr(LAYOUTS[name].module, reader)(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_good_label_header_gives_the_size_its_read_gives(tmp_path, name):
    layout = LAYOUTS[name]
    layout.build(tmp_path)
    sample = layout.module.samples(tmp_path, "train")[0]
    assert layout.module.label_size(sample.label) == layout.size == layout.module.read_label(sample.label).shape[::-1]


def test_a_label_of_another_size_is_named_with_its_image(tmp_path):
    layout = LAYOUTS["gta5"]
    layout.build(tmp_path)
    write_palette(tmp_path / "labels" / "00002.png", np.full((40, 96), 7))
    samples = gta5.samples(tmp_path, "train")
    for find in (lambda: check_pairs(samples, gta5.label_size),
                 lambda: SegmentationDataset(samples, gta5.read_label, gta5.train_transform(CROP_H, CROP_W))[1]):
        with pytest.raises(DataError, match=r"labels/00002.png is 96x40 but its image .*images/00002.png is 96x48"):
            find()


def test_the_target_labels_are_scanned_only_where_a_run_reads_them(tmp_path):
    """The target's training labels enter only the target-oracle mode, so only it checks them."""
    from lsdseg.config_io import with_overrides
    from lsdseg.data import prepare

    LAYOUTS["gta5"].build(tmp_path, ["00001", "24000"])
    Image.new("RGB", (96, 48)).save(tmp_path / "labels" / "00001.png")  # a colour label in the train split
    domain = {"name": "gta5", "root": str(tmp_path)}
    cfg = with_overrides({"data": {"source": {"name": "synthetic"}, "target": domain, "target_val": domain,
                                   "cache_dir": str(tmp_path / "cache"), "synthetic_size": 4}}).data
    with pytest.raises(DataError, match="00001.png is a 'RGB' image"):
        prepare(cfg, show_progress=False, oracle=True)
    assert not (tmp_path / "cache").exists()  # found before the benchmark is generated
    prepare(cfg, show_progress=False)  # adaptation never reads the target's training labels
    assert (tmp_path / "cache").exists()


def test_cityscapes_without_gtfine_is_read_unlabelled_and_a_labelled_use_says_what_to_do(tmp_path):
    """A Cityscapes download without gtFine: the target training split (and a validation split used without
    its labels) is read; asking for its labels names the fix, a label-free objective."""
    layout = LAYOUTS["cityscapes"]
    layout.build(tmp_path)
    shutil.rmtree(tmp_path / "gtFine")
    unlabelled = cityscapes.samples(tmp_path, "train", labelled=False)
    assert [s.label for s in unlabelled] == [None, None] and len({s.image for s in unlabelled}) == 2
    with pytest.raises(DataError, match="gtFine/train not found.*data.target_labels=false.*objective"):
        cityscapes.samples(tmp_path, "train")


def test_the_benchmark_cache_honours_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert synthetic.benchmark_dir(None, 0, 8).parent == tmp_path / "xdg" / "lsdseg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert synthetic.benchmark_dir(None, 0, 8).parent == tmp_path / "home" / ".cache" / "lsdseg"


def test_split_digests_change_with_the_files_of_a_split(tmp_path):
    from lsdseg.config_io import with_overrides
    from lsdseg.data import split_digests

    root = tmp_path / "gta"
    LAYOUTS["gta5"].build(root, ["00001", "00002", "24000"])  # 24000: the val split
    domain = {"name": "gta5", "root": str(root)}
    cfg = with_overrides({"data": {"source": domain, "target": domain, "target_val": domain}}).data
    before = split_digests(cfg)
    assert before["source"]["images"] == "2" and before["source_val"]["images"] == "1" and before["source"]["root"] == str(root)
    for folder in ("images", "labels"):
        (root / folder / "00002.png").rename(root / folder / "00003.png")
    after = split_digests(cfg)
    assert after["source"]["digest"] != before["source"]["digest"] and after["source_val"] == before["source_val"]


def test_target_crops_can_come_at_the_scale_f_is_evaluated_at(tmp_path):
    """`data.target_scale: eval`: the target image is resized to eval_width first (LANCZOS); a crop as large
    as the resized image is all of it (the 50 px margin of native crops gives way)."""
    from lsdseg.config_io import with_overrides
    from lsdseg.data import train_dataset

    LAYOUTS["cityscapes"].build(tmp_path)  # 128 x 96 images
    domain = {"name": "cityscapes", "root": str(tmp_path)}
    sizes = {"crop_height": 24, "crop_width": 32, "eval_height": 24, "eval_width": 32}
    cfg = with_overrides({"data": {"target": domain, **sizes, "target_scale": "eval"}}).data
    data = train_dataset(cfg.target, cfg, "target", labelled=False)
    image = Image.open(data.samples[0].image).convert("RGB")
    whole = np.asarray(image.resize((32, 24), Image.LANCZOS))
    for seed in range(3):
        assert np.array_equal((data[(0, seed)]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), whole)
    native = train_dataset(cfg.target, replace(cfg, target_scale="native"), "target", labelled=False)
    assert native[(0, 0)]["image"].shape == (3, 24, 32) and not torch.equal(native[(0, 0)]["image"], data[(0, 0)]["image"])
