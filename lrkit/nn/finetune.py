"""Fine-tuning a compressed language model, optionally by distillation from the dense one.

After :func:`lrkit.nn.compress_model` the factors are a good start, not the best point: the
truncation of every layer was chosen alone, and the errors add up through the network. A
few hundred steps of gradient descent on the factors recover much of the loss. Two signals:

- the next-token cross-entropy on the training text (what the model was trained with);
- distillation (Hinton et al. 2015): the KL divergence from the dense model's next-token
  distribution (the teacher) to the compressed model's, at a temperature T, scaled by T^2.
  The teacher gives a whole distribution per token instead of one observed byte, so each
  step carries more information about what the compressed model should compute.

``loss = kd_weight * KD + (1 - kd_weight) * CE``. The learning rate warms up linearly over
the first tenth of the steps, then follows a cosine to a tenth of ``lr``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core._params import checked
from .conv import FactorizedConv2d
from .linear import FactorizedLinear

__all__ = ["finetune"]


def _logits(model, batch):
    out = model(batch)
    return getattr(out, "logits", out)  # lrkit's Llama returns logits, transformers .logits


def _trainable(model: nn.Module, which: str) -> list[nn.Parameter]:
    if which == "all":
        return [p for p in model.parameters() if p.is_floating_point()]
    params = []
    for module in model.modules():
        if isinstance(module, FactorizedLinear | FactorizedConv2d):
            params += [p for p in module.parameters() if p.is_floating_point()]
    if not params:
        raise ValueError('trainable="factors" found no factorized layer; compress first or '
                         'pass trainable="all"')  # fmt: skip
    return params


def _batch_source(data, batch_size: int, seed: int) -> Callable[[int], torch.Tensor]:
    if callable(data) and not isinstance(data, torch.Tensor):
        return data
    if not isinstance(data, torch.Tensor) or data.ndim != 2:
        raise TypeError(
            "data must be a tensor of token windows (N, T) or a callable step -> batch; got "
            f"{type(data).__name__}" + (f" of shape {tuple(data.shape)}"
                                         if isinstance(data, torch.Tensor) else "")
        )  # fmt: skip
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size (={batch_size}) must be <= the {data.shape[0]} windows")

    def at(step: int) -> torch.Tensor:  # the same batches for the same seed, in any run
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return data[torch.randperm(data.shape[0], generator=g)[:batch_size]]

    return at


@checked
def finetune(
    model: nn.Module,
    data,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 8,
    teacher: nn.Module | None = None,
    kd_weight: float = 1.0,
    temperature: float = 1.0,
    trainable: str = "factors",
    weight_decay: float = 0.0,
    seed: int = 0,
    callback: Callable | None = None,
    inplace: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, torch.Tensor]:
    """Train a compressed causal language model for ``steps`` steps of AdamW.

    ``data``: token windows (N, T), of which ``batch_size`` random rows (seeded) make each
    step's batch, or a callable ``step -> batch``. ``teacher``: the dense model, for
    distillation (``kd_weight`` of the loss is the KL to its next-token distribution at
    ``temperature``; without a teacher the loss is the cross-entropy alone). ``trainable``:
    ``"factors"`` (the factorized layers' parameters) or ``"all"``. The model is trained on
    a copy unless ``inplace=True``; the teacher is never changed. ``callback(step, model,
    loss)``, if given, runs after every step (e.g. to evaluate now and then), in eval mode
    without gradients. Returns the trained model (in eval mode) and the loss of every step
    (float64, on the CPU).
    """
    if teacher is None and kd_weight not in (0.0, 1.0):
        raise ValueError(f"kd_weight (={kd_weight}) mixes in a teacher; give teacher=")
    use_kd = teacher is not None and kd_weight > 0
    target = model if inplace else copy.deepcopy(model)
    params = _trainable(target, trainable)
    frozen = [p for p in target.parameters() if all(p is not q for q in params)]
    was_grad = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    batch_at = _batch_source(data, batch_size, seed)
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay)
    warmup = max(1, steps // 10)

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr / 10 + 0.45 * lr * (1 + math.cos(math.pi * t))

    losses = torch.zeros(steps, dtype=torch.float64)
    items = range(steps)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="fine-tuning", unit="step")
    device = next(target.parameters()).device
    target.train()
    if teacher is not None:
        teacher_mode = teacher.training
        teacher.eval()
    try:
        for step in items:
            batch = batch_at(step).to(device)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            logits = _logits(target, batch)[:, :-1].float()  # (B, T-1, V)
            loss = torch.zeros((), device=device)
            if not use_kd or kd_weight < 1:
                ce = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
                loss = loss + (1 - kd_weight if use_kd else 1.0) * ce
            if use_kd:
                with torch.no_grad():
                    t_logits = _logits(teacher, batch)[:, :-1].float()
                T = temperature
                kl = F.kl_div(
                    F.log_softmax(logits / T, -1).flatten(0, 1),
                    F.log_softmax(t_logits / T, -1).flatten(0, 1),
                    log_target=True,
                    reduction="batchmean",
                )  # mean over tokens of KL(teacher || student)
                loss = loss + kd_weight * T * T * kl
            if not bool(torch.isfinite(loss.detach())):
                raise ValueError(
                    f"the loss is {float(loss.detach())} at step {step}: lower lr (={lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[step] = float(loss.detach())
            if callback is not None:
                target.eval()
                with torch.no_grad():
                    callback(step, target, float(losses[step]))
                target.train()
            if progress:
                items.set_postfix(loss=f"{float(losses[step]):.4f}")
    finally:
        for p, g in zip(frozen, was_grad, strict=True):
            p.requires_grad_(g)
        if teacher is not None:
            teacher.train(teacher_mode)
        target.eval()
    for p in params:
        p.grad = None
    return target, losses
