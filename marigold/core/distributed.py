"""Several processes, one job: ``accelerate launch`` / ``torchrun`` start N copies of the CLI; each takes its
share of the inputs by rank and writes its own files, so N processes write the same files as one.

Only the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) is read: splitting independent inputs
needs no communication between the processes, and the run works the same under either launcher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share: every ``size``-th item from ``rank`` (round robin balances mixed sizes)."""
        return list(items[self.rank::self.size])

    def device(self, asked: str | None) -> str | None:
        """The device this process uses: the one asked for, else its own GPU (``cuda:LOCAL_RANK``) when several
        processes share a machine with GPUs, else the default."""
        if asked is not None or self.size == 1 or not torch.cuda.is_available():
            return asked
        return f"cuda:{self.local_rank % torch.cuda.device_count()}"


def world() -> World:
    """The launcher's view of this process (a plain run is rank 0 of 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
