"""One way to say how random numbers are drawn: ``seed: int | torch.Generator | None``."""

from __future__ import annotations

import numbers

import torch

__all__ = ["make_generator"]


def make_generator(seed, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` from ``seed``.

    - ``int``: a new generator seeded with it, so the same seed gives the same draws;
    - ``torch.Generator``: used as is (it must live on ``device``); draws advance its state;
    - ``None``: a new generator seeded from the operating system's entropy.
    """
    device = torch.device(device)
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
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed (={seed}) must be >= 0")
        gen.manual_seed(int(seed))
    else:
        raise TypeError(
            f"seed must be an int, a torch.Generator or None; got {type(seed).__name__}"
        )
    return gen
