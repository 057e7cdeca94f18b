"""mIoU: dataset-level confusion matrix, TP/(TP+FP+FN), nanmean, protocols, numpy and torch inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lsdseg.data.labels import PROTOCOLS
from lsdseg.metrics import confusion_matrix, iou

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("kind", [np.asarray, torch.as_tensor])
def test_known_values(kind):
    target = kind(np.array([[0, 0, 1, 1], [2, 2, 255, 1]]))
    pred = kind(np.array([[0, 1, 1, 1], [2, 0, 0, 1]]))
    conf = confusion_matrix(pred, target, num_classes=3)
    assert conf.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    per_class, miou = iou(conf)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 3, FP 1 -> 3/4; class 2: TP 1, FN 1 -> 1/2
    assert np.allclose(per_class, [1 / 3, 3 / 4, 1 / 2])
    assert math.isclose(miou, (1 / 3 + 3 / 4 + 1 / 2) / 3)


def test_absent_class_is_nan_and_dropped_from_the_mean():
    conf = confusion_matrix(np.array([0, 1]), np.array([0, 1]), num_classes=3)
    per_class, miou = iou(conf)
    assert math.isnan(per_class[2]) and miou == 1.0


def test_predicted_but_absent_class_counts_as_zero():
    per_class, miou = iou(confusion_matrix(np.array([0, 2]), np.array([0, 0]), num_classes=3))
    assert per_class[2] == 0.0 and math.isclose(miou, 0.25)  # class 0: 1/2, class 2: 0


def test_dataset_level_not_per_image_mean():
    a = confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), 2)
    b = confusion_matrix(np.array([1]), np.array([1]), 2)
    _, miou = iou(a + b)
    assert math.isclose(miou, (3 / 4 + 1 / 2) / 2)


def test_protocols_restrict_the_mean():
    assert len(PROTOCOLS["cityscapes19"]) == 19 and len(PROTOCOLS["synthia16"]) == 16 and len(PROTOCOLS["synthia13"]) == 13
    conf = np.eye(19, dtype=np.int64)
    conf[9, 9] = 0
    conf[9, 0] = 5  # terrain (not in SYNTHIA's 16) always wrong
    assert iou(conf)[1] < 1.0
    assert iou(conf, PROTOCOLS["synthia16"])[1] < 1.0  # class 0 now has FPs
    conf[9, 0] = 0
    assert math.isclose(iou(conf, PROTOCOLS["synthia16"])[1], 1.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="label resolution"):
        confusion_matrix(np.zeros(4), np.zeros(5), 2)


def test_synthia_reports_the_13_class_miou_star_next_to_its_16():
    from lsdseg.config_io import with_overrides
    from lsdseg.data import also_reported
    from lsdseg.data.labels import CLASSES, PROTOCOLS

    per_class = {CLASSES[c]: 0.5 for c in PROTOCOLS["synthia16"]} | {"wall": 0.0, "fence": 0.0, "pole": 0.2}
    synthia = {"name": "synthia", "root": "/data/synthia"}
    cityscapes = {"name": "cityscapes", "root": "/data/cityscapes"}
    cfg = with_overrides({"data": {"source": synthia, "target": cityscapes, "target_val": cityscapes}}).data
    assert also_reported(cfg, per_class) == {"miou13": 0.5}  # the three weakest classes are not in it
    gta = with_overrides({"data": {"source": {"name": "gta5", "root": "/g"}, "target": cityscapes, "target_val": cityscapes}}).data
    assert also_reported(gta, per_class) == {}
    assert also_reported(with_overrides({"data": {"source": synthia}}).data, per_class) == {}  # the benchmark's 8 classes
