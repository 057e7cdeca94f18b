"""Networks: output shapes at the reference sizes, a backward pass, and local pretrained-weight loading."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import vgg16

from lsdseg.config import ModelConfig
from lsdseg.models import PretrainedError, build_nets
from lsdseg.models.fcn8s import vgg16_fcn8s

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("size", [(32, 64), (40, 72), (47, 101)])
def test_small_nets_keep_the_input_size(size):
    nets = build_nets(ModelConfig(small_width=4, g_width=4, d_width=4), adapt=True)
    x = torch.rand(2, 3, *size)
    scores, feats = nets.f(x)
    fake = nets.g(feats, x.shape[-2:])
    d_logits, c_logits = nets.d(fake)
    assert scores.shape == (2, 19, *size) and fake.shape == x.shape
    assert 0 <= fake.min() and fake.max() <= 1
    assert d_logits.shape[1] == 4 and c_logits.shape[1] == 19
    assert d_logits.shape[-2:] == ((size[0] + 2) // 2 // 4, (size[1] + 2) // 2 // 4)
    (scores.mean() + d_logits.mean() + c_logits.mean()).backward()
    assert all(p.grad is not None for p in nets.g.parameters())


def test_the_classifier_scores_are_fp32_under_bf16_autocast():
    """The argmax (evaluation, prediction) and L_seg read fp32 scores: bf16 has 8 bits of mantissa."""
    nets = build_nets(ModelConfig(small_width=4, g_width=4, d_width=4), adapt=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores, feats = nets.f(torch.rand(1, 3, 32, 64))
    assert scores.dtype == torch.float32 and feats.fc7.dtype == torch.bfloat16  # the trunk still runs in bf16


@pytest.mark.slow
def test_vgg16_matches_the_reference_shapes():
    nets = build_nets(ModelConfig(backbone="vgg16", g_width=64, d_width=128, d_blocks=3, g_blocks=2), adapt=True)
    with torch.no_grad():
        x = torch.rand(1, 3, 320, 640)
        scores, feats = nets.f(x)
        fake = nets.g(feats, x.shape[-2:])
        d_logits, _ = nets.d(x)
    # section 1 of the reference: fc7 11x21, pool4 33x53, pool3 65x105, D grid 40x80 at 320x640
    assert [tuple(f.shape[-2:]) for f in feats] == [(11, 21), (33, 53), (65, 105)]
    assert scores.shape[-2:] == (320, 640) and fake.shape[-2:] == (320, 640) and d_logits.shape[-2:] == (40, 80)


@pytest.mark.slow
def test_pretrained_vgg16_weights_load_from_a_local_file(tmp_path):
    reference = vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(reference.state_dict(), path)
    net = vgg16_fcn8s(19, str(path))
    assert torch.equal(net.to_pool3[0].weight, reference.features[0].weight)
    assert torch.equal(net.fc[0].weight.flatten(1), reference.classifier[0].weight)
    assert torch.equal(net.fc[3].weight.flatten(1), reference.classifier[3].weight)


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("garbage", "cannot be loaded"),
    ({"features.0.weight": torch.zeros(1)}, "do not fit VGG-16"),
    ({"features.conv1.weight": torch.zeros(1)}, "do not fit VGG-16"),  # foreign key names
    ({f"features.{i}.{p}": [0.0] for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) for p in ("weight", "bias")},
     "is a list, not a tensor"),
])
def test_bad_pretrained_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "w.pth"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(PretrainedError, match=message) as err:
        vgg16_fcn8s(19, str(path))
    assert "\n" not in str(err.value) and str(path) in str(err.value)
