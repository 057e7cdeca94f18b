"""Endless, resumable sampling for the unpaired domains.

Source and target have different lengths and are never zipped (zip truncates to the shorter one). Each
domain gets its own endless stream of batches whose content is a pure function of (seed, step): a
seeded permutation per pass over the data and a per-sample crop seed. Restarting the stream at step k
yields exactly the batches an uninterrupted stream yields from step k on.
"""
from __future__ import annotations

from itertools import count
from typing import Iterator

import numpy as np
import torch


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, forever, batches of (index, crop_seed) keys for steps start_step, start_step+1, ..."""

    def __init__(self, num_items: int, batch_size: int, seed: int, start_step: int = 0):
        self.num_items, self.batch_size, self.seed, self.start_step = num_items, batch_size, seed, start_step

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_items)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, perm = -1, None
        for step in count(self.start_step):
            batch = []
            for k in range(step * self.batch_size, (step + 1) * self.batch_size):
                if k // self.num_items != epoch:
                    epoch = k // self.num_items
                    perm = self._permutation(epoch)
                crop_seed = int(np.random.SeedSequence([self.seed, k]).generate_state(1)[0])
                batch.append((int(perm[k % self.num_items]), crop_seed))
            yield batch

    def __len__(self) -> int:  # endless; DataLoader only needs this for progress estimates
        return 2**62


def endless_batches(
    dataset: torch.utils.data.Dataset, batch_size: int, seed: int, start_step: int, num_workers: int
) -> Iterator[dict[str, torch.Tensor]]:
    """An endless iterator over training batches of one domain, starting at `start_step`."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(len(dataset), batch_size, seed, start_step),
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        # its own generator, so creating the loader never draws from the global RNG (dropout's)
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)
