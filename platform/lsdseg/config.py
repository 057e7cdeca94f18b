"""One typed, frozen, validated config tree for an LSD-seg run.

Every coefficient of the paper is a named field. Every loss term is computed as a MEAN over its valid pixels
(or D locations); `loss.convention` says how the weights read: `mean` (as given), or `summed`, the public
code's convention (each cross-entropy summed over its pixels or D locations next to a mean L1), in which
its flags' nominal values reproduce its balance at any crop size (`lsdseg/losses.py::in_means`).

Defaults train the small backbone on the built-in benchmark on a CPU in minutes; the paper's VGG-16
settings live in `configs/*.yaml`.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

from lsdseg.objectives import VALIDATORS, Objective

_STRICT = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)  # no inf or NaN weight or rate

Mode = Literal["lsd", "source_only", "target_oracle"]
DatasetName = Literal["synthetic", "gta5", "synthia", "cityscapes"]


@dataclass(config=_STRICT)
class DomainData:
    """One domain's dataset: which one, where it lives, and which split."""

    name: DatasetName = "synthetic"
    root: Optional[str] = None  # dataset folder in its distributed layout; None for the built-in benchmark
    split: Optional[str] = None  # None: the dataset's train split (source, target) or val split (target_val, target_test)


@dataclass(config=_STRICT)
class DataConfig:
    source: DomainData = DomainData()
    target: DomainData = DomainData()
    target_val: DomainData = DomainData()
    # Labelled target images that nothing selects on: a sweep reports its shipped model's target mIoU here.
    # The built-in benchmark has a split of its own for it; on real data point it at images that target_val
    # does not hold whenever selection reads target labels (train.objective=target_miou)
    target_test: DomainData = DomainData()
    crop_height: int = Field(64, gt=0)  # training crop; public code: 320
    crop_width: int = Field(128, gt=0)  # public code: 640
    eval_height: int = Field(80, gt=0)  # eval input is resized to this; public code: 320 (paper: 512)
    eval_width: int = Field(160, gt=0)  # public code: 640 (paper: 1024)
    # Where the target's training crops come from: its images as stored (public code: native 2048x1024
    # Cityscapes, objects ~3x larger than it evaluates them), or first resized to eval_width, the scale F is
    # evaluated at
    target_scale: Literal["native", "eval"] = "native"
    batch_size: int = Field(8, gt=0)  # per domain; public code: 1 source + 1 target
    num_workers: int = Field(0, ge=0)  # loader processes; 0 = in the training process
    val_limit: Optional[int] = Field(None, gt=0)  # evaluate on the first N target validation images only
    # source validation images the label-free validators use (source_miou, dev): a few suffice, and each
    # evaluation runs F over them too
    source_val_limit: int = Field(100, gt=0)
    # False: the target validation split is used without its labels, as on real data (no target mIoU; only
    # the label-free objectives of lsdseg.validators can select)
    target_labels: bool = True
    cache_dir: Optional[str] = None  # built-in benchmark cache; default $XDG_CACHE_HOME/lsdseg or ~/.cache/lsdseg
    synthetic_seed: int = 0  # the built-in benchmark is a pure function of this seed
    synthetic_size: int = Field(600, gt=0)  # images per built-in split


@dataclass(config=_STRICT)
class ModelConfig:
    backbone: Literal["small", "vgg16"] = "small"
    num_classes: int = Field(19, gt=0)  # Cityscapes train ids
    pretrained: Optional[str] = None  # local torchvision VGG-16 state_dict (vgg16 only); never downloaded
    small_width: int = Field(16, gt=0)  # channels of the small backbone's first stage (x2 per stage)
    g_width: int = Field(8, gt=0)  # G's base width `ngf`; reference: 64
    d_width: int = Field(16, gt=0)  # D's trunk width; reference: 128
    d_blocks: int = Field(1, gt=0)  # residual blocks per D stage; reference: 3
    g_blocks: int = Field(1, gt=0)  # residual blocks per G stage; reference: 2
    dropout: float = Field(0.5, ge=0, lt=1)  # in G's and D's residual blocks (G's only noise source)


@dataclass(config=_STRICT)
class LossWeights:
    """Weights of the loss terms; `convention` says what they weigh (see module docstring)."""

    # mean: each weight multiplies a mean term. summed: the public code's convention, its nominal weights
    # (the defaults below) giving its balance: F's adversarial/auxiliary terms 64x lighter than in `mean`,
    # G's L1 lighter by D's location count (3,200 at 320x640, 8,192 at 512x1024)
    convention: Literal["mean", "summed"] = "mean"
    f_adv: float = Field(0.1, ge=0)  # beta: F's cross-domain adversarial terms
    f_aux: float = Field(0.1, ge=0)  # alpha: F's auxiliary-classifier term through G and D
    g_adv: float = Field(0.1, ge=0)  # G's within-domain adversarial terms (public code: hard-coded 0.1)
    g_aux: float = Field(1.0, ge=0)  # G's auxiliary-classifier term (public code: hard-coded 1)
    g_rec: float = Field(1.0, ge=0)  # G's L1 reconstruction terms (public code: --l1_weight 1)
    d_aux: float = Field(1.0, ge=0)  # D's auxiliary-classifier term on real source images


@dataclass(config=_STRICT)
class OptimConfig:
    """Adam for all three networks, as in the public code (no weight decay)."""

    f_lr: float = Field(1e-3, gt=0)  # F/C; public code: 1e-5 (fine-tuning VGG-16)
    f_beta1: float = Field(0.9, ge=0, lt=1)
    f_beta2: float = Field(0.999, ge=0, lt=1)
    f_bias_lr_mult: float = Field(2.0, gt=0)  # F/C biases train at this multiple of f_lr
    f_lr_decay: float = Field(1.0, gt=0, le=1)  # F/C lr is multiplied by this (1: no decay; public: 0.1) ...
    f_lr_decay_every: int = Field(1_000_000, gt=0)  # ... every this many iterations; public: 23,800
    g_lr: float = Field(1e-4, gt=0)  # public code: 1e-4, constant
    g_beta1: float = Field(0.7, ge=0, lt=1)
    g_beta2: float = Field(0.999, ge=0, lt=1)
    d_lr: float = Field(1e-4, gt=0)  # public code: 1e-4, constant
    d_beta1: float = Field(0.7, ge=0, lt=1)
    d_beta2: float = Field(0.999, ge=0, lt=1)


@dataclass(config=_STRICT)
class TrainConfig:
    mode: Mode = "lsd"
    iterations: int = Field(1000, gt=0)
    eval_every: int = Field(250, gt=0)  # evaluate on the target val split (and checkpoint) this often, and at the end
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # channels_last memory format on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile F, G and D (their forward; checkpoints and optimizers see the plain modules)
    threads: Optional[int] = Field(None, gt=0)  # torch intra-op threads; None = torch's default
    out_dir: Optional[str] = None  # resolved config, metrics and checkpoints; None = runs/<mode>-<time>
    keep_checkpoints: int = Field(1, ge=1)  # newest N evaluation checkpoints kept on disk
    # What selects the checkpoint (checkpoints/selected) and, in a sweep, steers the search: target mIoU
    # (needs target labels: on real data that is selecting on the test set) or a label-free validator
    objective: Objective = "target_miou"


@dataclass(config=_STRICT)
class FaultInjection:
    """Faults on purpose, at a given iteration: how the tests prove that runs and sweeps survive them."""

    explode_at: Optional[int] = Field(None, ge=0)  # a NaN flows through the networks (a diverging run)
    crash_at: Optional[int] = Field(None, ge=0)  # an error is raised (a crashing trial)


@dataclass(config=_STRICT)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossWeights = LossWeights()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    faults: FaultInjection = FaultInjection()

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if self.model.pretrained is not None and self.model.backbone != "vgg16":
            raise ValueError("model.pretrained is a VGG-16 state_dict: set model.backbone=vgg16 or drop it")
        if self.train.objective == "target_miou" and not self.data.target_labels:
            raise ValueError("train.objective=target_miou needs target labels, and data.target_labels is false: "
                             f"pick a label-free objective ({', '.join(VALIDATORS)})")
        return self
