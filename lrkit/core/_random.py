"""One way to say how random numbers are drawn: ``seed: int | torch.Generator | None``."""

from __future__ import annotations

import torch

from ._checks import check_seed

__all__ = ["make_generator"]


def make_generator(seed, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` from ``seed``.

    - ``int``: a new generator seeded with it, so the same seed gives the same draws;
    - ``torch.Generator``: used as is (it must live on ``device``); draws advance its state;
    - ``None``: a new generator seeded from the operating system's entropy.
    """
    device = torch.device(device)
    seed = check_seed(seed)
    if isinstance(seed, torch.Generator):
        if seed.device.type != device.type:
            raise ValueError(
                f"seed is a torch.Generator on {seed.device}, but the data lives on {device}; "
                f"create it with torch.Generator(device={str(device)!r})"
            )
        return seed
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen
