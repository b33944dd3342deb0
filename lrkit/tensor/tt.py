"""Tensor train (TT, or matrix product state) by TT-SVD (Oseledets 2011, Alg. 1).

A TT tensor stores one 3-way core per mode, G_k of shape (r_{k-1}, I_k, r_k) with
r_{-1} = r_{N-1} = 1, and every entry is a product of matrices:

    T[i_0, ..., i_{N-1}] ~= G_0[:, i_0, :] G_1[:, i_1, :] ... G_{N-1}[:, i_{N-1}, :]

Storage ``sum_k r_{k-1} I_k r_k`` grows linearly with the order N, where Tucker's core grows
exponentially. TT-SVD sweeps left to right: truncate the SVD of the current (r_{k-1} I_k) x
(rest) matrix, keep its left vectors as core k, and carry their projection of the rest on.
"""

from __future__ import annotations

import torch

from ..core._checks import as_tensor, check_int_tuple, warn_adjusted
from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization
from ._ops import from_backend, leading_left_vectors, prod, to_backend

__all__ = ["TTTensor", "tt_svd"]


class TTTensor(Factorization):
    """Cores G_k of shape (r_{k-1}, I_k, r_k), the first and last bond ranks 1.

    Iterates over its cores like TensorLy's TTTensor: ``G0, G1, G2 = tt``.
    """

    _fields = ("cores",)

    def __init__(self, cores):
        if isinstance(cores, torch.Tensor) or len(cores) < 1:
            raise ValueError("cores must be a non-empty list of 3-way tensors (r_prev, I_k, r)")
        cores = [as_tensor(G, f"cores[{k}]", min_ndim=3) for k, G in enumerate(cores)]
        prev = 1
        for k, G in enumerate(cores):
            last = 1 if k == len(cores) - 1 else G.shape[2]
            if G.ndim != 3 or G.shape[0] != prev or G.shape[2] != last:
                raise ValueError(
                    f"cores[{k}] has shape {tuple(G.shape)}; it must be ({prev}, I_{k}, "
                    f"{'1' if k == len(cores) - 1 else 'r'}): bond ranks must chain, from 1 to 1"
                )
            prev = G.shape[2]
        dtype = cores[0].dtype
        for G in cores:
            dtype = torch.promote_types(dtype, G.dtype)
        self.cores = [G.to(device=cores[0].device, dtype=dtype) for G in cores]

    @property
    def factors(self) -> list[torch.Tensor]:
        """The cores (the factors of a tensor train)."""
        return self.cores

    @property
    def rank(self) -> tuple[int, ...]:
        """Bond ranks (1, r_0, ..., r_{N-2}, 1), as TensorLy writes them."""
        return (1, *(G.shape[2] for G in self.cores))

    @property
    def shape(self) -> torch.Size:
        return torch.Size(G.shape[1] for G in self.cores)

    def __iter__(self):
        return iter(self.cores)

    def __len__(self) -> int:
        return len(self.cores)

    def __getitem__(self, k):
        return self.cores[k]

    def to_dense(self) -> torch.Tensor:
        out = self.cores[0].reshape(-1, self.cores[0].shape[2])  # (I_0, r_0)
        for G in self.cores[1:]:
            r_prev, I_k, r = G.shape
            out = (out @ G.reshape(r_prev, I_k * r)).reshape(-1, r)  # (I_0 ... I_k, r_k)
        return out.reshape(self.shape)

    def _describe(self) -> str:
        return f"rank={self.rank}"

    def to_tensorly(self):
        """This tensor as a ``tensorly.tt_tensor.TTTensor`` in TensorLy's active backend."""
        import tensorly as tl
        from tensorly.tt_tensor import TTTensor as TLTTTensor

        return TLTTTensor([to_backend(G, tl) for G in self.cores])

    @classmethod
    @checked
    def from_tensorly(cls, tt) -> TTTensor:
        """From a TensorLy ``TTTensor`` or a list of cores of any backend."""
        import tensorly as tl

        return cls([from_backend(G, tl) for G in tt])


def _check_tt_ranks(rank, shape) -> tuple[int, ...]:
    out = []
    for k, r in enumerate(check_int_tuple(rank, "rank", len(shape) - 1)):  # N - 1 bond ranks
        bound = min(prod(shape[: k + 1]), prod(shape[k + 1 :]))
        if r > bound:
            warn_adjusted(
                f"rank[{k}] (={r}) exceeds the largest useful bond rank {bound} for shape "
                f"{tuple(shape)}; it is clipped to {bound}"
            )
            r = bound
        out.append(r)
    return tuple(out)


@checked
def tt_svd(T, rank, *, seed=None) -> TTTensor:
    """Tensor-train decomposition by TT-SVD (Oseledets 2011, Alg. 1).

    Parameters
    ----------
    T : numpy.ndarray or torch.Tensor with at least 3 dimensions
        float32 and float64 keep their dtype; integer and half-precision input is computed in
        float32. The result lives on T's device. T is never modified.
    rank : int or sequence of N - 1 ints
        Bond ranks between consecutive modes (an int: the same for every bond). A bond rank
        above ``min(I_0...I_k, I_{k+1}...I_{N-1})`` is clipped with a warning.
    seed : int, torch.Generator or None
        Used only when an unfolding is large enough for the randomized SVD.
    """
    T = as_tensor(T, "T", min_ndim=3)
    ranks = _check_tt_ranks(rank, T.shape)
    gen = make_generator(seed, T.device)
    cores, r_prev = [], 1
    C = T.reshape(1, -1)  # (r_prev, rest)
    for k, I_k in enumerate(T.shape[:-1]):
        C = C.reshape(r_prev * I_k, -1)  # (r_prev I_k, I_{k+1} ... I_{N-1})
        r = min(ranks[k], *C.shape)
        U = leading_left_vectors(C, r, seed=gen)  # (r_prev I_k, r)
        cores.append(U.reshape(r_prev, I_k, r))
        C = U.T @ C  # (r, rest): what the kept directions carry on
        r_prev = r
    cores.append(C.reshape(r_prev, T.shape[-1], 1))
    return TTTensor(cores)
