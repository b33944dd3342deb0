"""A small Llama: the decoder of Touvron et al. (2023) in plain PyTorch, readable top to bottom.

Architecture (as in Hugging Face's ``LlamaForCausalLM``, whose parameter names and config
keys we use so checkpoints move both ways):

    tokens -> embed -> [ x + Attn(RMSNorm(x)) ; x + MLP(RMSNorm(x)) ] x L -> RMSNorm -> lm_head

- RMSNorm (Zhang & Sennrich 2019): scale by the root mean square, no mean subtraction.
- Rotary position embeddings (Su et al. 2021), "rotate half" layout as in Hugging Face.
- Grouped-query attention (Ainslie et al. 2023): ``num_key_value_heads`` <= heads; each K/V
  head serves ``heads / kv_heads`` query heads, which shrinks the KV cache by that factor.
- SwiGLU MLP (Shazeer 2020): ``down(silu(gate(x)) * up(x))``.
- The KV cache is an explicit object (:class:`KVCache`) that owns its length and contents,
  and the attention of each block is swappable (``block.self_attn``, called as
  ``self_attn(x, cos, sin, cache, layer)``): lesson 11 puts in one that caches a low-rank
  latent instead of keys and values.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core._params import checked
from .config import LlamaConfig

__all__ = ["LlamaConfig", "Llama", "KVCache"]  # LlamaConfig lives in config.py


class KVCache:
    """What attention keeps of past positions: per layer, a tuple of tensors whose
    second-to-last dimension is the position.

    The plain attention stores one (k, v) pair per layer, shapes (batch, kv_heads, positions,
    head_dim), keys after RoPE; another attention module (``lrkit.nn.LatentKVAttention``
    keeps a low-rank latent of the input, (batch, positions, rank), before RoPE) stores
    what it needs in the same object. The cache owns its length and its contents:

    - ``update(layer, *tensors)`` appends the new positions and returns everything cached
      for that layer (a tuple, in the order given);
    - ``length(layer)`` (``len(cache)`` for the first layer) counts the cached positions;
    - ``nbits`` counts every bit of the tensors it holds.
    """

    def __init__(self):
        self.layers: list[tuple[torch.Tensor, ...]] = []

    def length(self, layer: int = 0) -> int:
        """Number of positions cached for ``layer`` (0 before its first update)."""
        return self.layers[layer][0].shape[-2] if layer < len(self.layers) else 0

    def __len__(self) -> int:
        """Number of cached positions."""
        return self.length(0)

    def update(self, layer: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append ``tensors`` (new positions on dimension -2) to ``layer``'s entry; return
        the whole entry."""
        if layer == len(self.layers):
            self.layers.append(tuple(tensors))
        elif layer < len(self.layers):
            old = self.layers[layer]
            if len(old) != len(tensors):
                raise ValueError(
                    f"layer {layer} caches {len(old)} tensors; update gave {len(tensors)}"
                )
            self.layers[layer] = tuple(
                torch.cat([a, b], dim=-2) for a, b in zip(old, tensors, strict=True)
            )
        else:
            raise ValueError(
                f"layer (={layer}) must be <= {len(self.layers)}: layers fill the cache in order"
            )
        return self.layers[layer]

    @property
    def nbits(self) -> int:
        """Every stored bit of the cached tensors (``nbits`` as everywhere in lrkit)."""
        return sum(8 * t.numel() * t.element_size() for entry in self.layers for t in entry)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()  # normalize in float32 whatever the model's dtype, as HF does
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype):
    """cos and sin of the rotary angles, (T, head_dim), "rotate half" layout."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )  # (head_dim/2,)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    emb = torch.cat([angles, angles], dim=-1)  # (T, head_dim)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    """Rotate pairs (x_i, x_{i + d/2}) by the position's angle. x: (B, h, T, d)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.h, self.kv, self.d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None = None, layer: int = 0):
        """The seam every attention module of this model implements.

        ``x`` (B, T, hidden): the normed input of the T new positions; ``cos``, ``sin``
        (past + T, head_dim): rotary tables ("rotate half" layout) of every position up to
        the last new one, so a module that rebuilds old keys can rotate them; ``cache``: a
        :class:`KVCache` (or None) in which this module stores what it keeps, at index
        ``layer``. Returns (B, T, hidden).
        """
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)  # (B, h, T, d)
        k = self.k_proj(x).view(B, T, self.kv, self.d).transpose(1, 2)  # (B, kv, T, d)
        v = self.v_proj(x).view(B, T, self.kv, self.d).transpose(1, 2)  # (B, kv, T, d)
        q, k = apply_rope(q, cos[-T:], sin[-T:]), apply_rope(k, cos[-T:], sin[-T:])
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, kv, past + T, d)
        if self.kv != self.h:  # each K/V head serves h/kv query heads
            k = k.repeat_interleave(self.h // self.kv, dim=1)  # (B, h, S, d)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        y = causal_attention(q, k, v)  # (B, h, T, d)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.d))  # (B, T, hidden)


def causal_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v where the T new queries (the last T of S positions) see
    every earlier position and themselves. q (B, h, T, d), k (B, h, S, d), v (B, h, S, dv)."""
    T, S = q.shape[2], k.shape[2]
    if S == T:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class MLP(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, cache=None, layer=0):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Body(nn.Module):
    """Holds the parameters under ``model.`` as Hugging Face names them."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Llama(nn.Module):
    """Llama-architecture causal language model. ``model(ids)`` returns logits (B, T, vocab).

    Pass a cache (:meth:`new_cache`) to reuse what attention kept of earlier positions: the
    call then processes only the new tokens ``ids`` and appends them to the cache.
    """

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = _Body(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T = ids.shape
        start = len(cache) if cache is not None else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {start + T} exceeds max_position_embeddings "
                f"(={self.config.max_position_embeddings})"
            )
        x = self.model.embed_tokens(ids)  # (B, T, hidden)
        positions = torch.arange(start + T, device=ids.device)  # old positions too (seam)
        cos, sin = rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta, x.dtype)
        for i, block in enumerate(self.model.layers):
            x = block(x, cos, sin, cache, i)
        return self.lm_head(self.model.norm(x))  # (B, T, vocab)

    def new_cache(self) -> KVCache:
        """An empty cache for :meth:`forward`: each layer's attention fills in what it keeps
        (``generate`` starts from this one)."""
        return KVCache()

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # tied weights counted once

    # -- Hugging Face format ------------------------------------------------------------
    def save_pretrained(self, path, *, dtype: torch.dtype | None = None) -> None:
        """Write ``config.json`` and ``model.safetensors`` (Hugging Face names) to ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.config.to_hf_dict()
        state = {}
        for name, t in self.state_dict().items():
            if name == "lm_head.weight" and self.config.tie_word_embeddings:
                continue  # tied: stored once, as model.embed_tokens.weight
            t = t.detach().cpu()
            state[name] = (t.to(dtype) if dtype is not None else t).contiguous()
        if dtype is not None:
            cfg["torch_dtype"] = str(dtype).removeprefix("torch.")
        (path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})

    @classmethod
    @checked
    def from_pretrained(cls, path, *, dtype: torch.dtype = torch.float32, device="cpu") -> Llama:
        """Load a Llama checkpoint directory (``config.json`` + ``model.safetensors``)."""
        from safetensors.torch import load_file

        path = Path(path)
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(
                    f"{path} has no {name}; a checkpoint needs config.json and model.safetensors"
                )
        config = LlamaConfig.from_hf_dict(json.loads((path / "config.json").read_text()))
        with torch.device("meta"):
            model = cls(config)
        state = load_file(str(path / "model.safetensors"))
        expected = {k: v.shape for k, v in model.state_dict().items()}
        if config.tie_word_embeddings:
            expected.pop("lm_head.weight")
            state.pop("lm_head.weight", None)
        missing = sorted(set(expected) - set(state))
        if missing:
            raise KeyError(f"checkpoint {path} lacks tensor(s): {', '.join(missing[:5])}")
        unexpected = sorted(set(state) - set(expected))
        if unexpected:
            raise KeyError(
                f"checkpoint {path} has unexpected tensor(s): {', '.join(unexpected[:5])}"
            )
        for k, shape in expected.items():
            if tuple(state[k].shape) != tuple(shape):
                raise ValueError(
                    f"{k}: checkpoint shape {tuple(state[k].shape)} != config shape {tuple(shape)}"
                )
        model = model.to_empty(device=device)
        model.load_state_dict(
            {k: v.to(dtype) for k, v in state.items()}, strict=False, assign=False
        )
        if config.tie_word_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        return model.to(dtype).eval()
