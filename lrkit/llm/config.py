"""The configuration of the course's Llama, with Hugging Face's ``LlamaConfig`` keys, so a
``config.json`` moves both ways; every value is checked when the config is built."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

from ..core._checks import check_positive_int
from ..core._params import checked

__all__ = ["LlamaConfig"]


# Sizes that must be integers >= 1, and the keys a config.json must give (the shapes).
_SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
)
_REQUIRED = _SIZES[:5]


@dataclass
class LlamaConfig:
    """Model shape, with Hugging Face's Llama key names (so ``config.json`` is shared)."""

    vocab_size: int = 258
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    bos_token_id: int = 256
    eos_token_id: int = 257
    head_dim: int | None = None

    def __post_init__(self):
        for name in _SIZES:
            check_positive_int(getattr(self, name), name)
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        check_positive_int(self.head_dim, "head_dim")
        for name in ("rms_norm_eps", "rope_theta"):  # eps <= 0 gives NaN on a zero row
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise TypeError(f"{name} must be a real number; got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} (={value}) must be a finite number > 0")
        if not isinstance(self.tie_word_embeddings, bool):
            raise TypeError(f"tie_word_embeddings must be a bool; got {self.tie_word_embeddings!r}")
        for name in ("bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, numbers.Integral)
                and not isinstance(value, bool)
                and 0 <= value < self.vocab_size
            ):
                raise ValueError(
                    f"{name} (={value!r}) must be None or an integer in 0..{self.vocab_size - 1} "
                    f"(vocab_size - 1)"
                )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads (={self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads (={self.num_key_value_heads})"
            )

    def to_hf_dict(self) -> dict:
        d = asdict(self)
        d.update(
            architectures=["LlamaForCausalLM"],
            model_type="llama",
            hidden_act="silu",
            attention_bias=False,
            mlp_bias=False,
            rope_scaling=None,
            torch_dtype="float32",
        )
        return d

    @classmethod
    @checked
    def from_hf_dict(cls, d: dict) -> LlamaConfig:
        if d.get("model_type") != "llama":
            raise ValueError(
                f"config.json has model_type={d.get('model_type')!r}; only 'llama' is supported"
            )
        if d.get("rope_scaling"):
            raise ValueError(
                "config.json sets rope_scaling; lrkit's Llama supports plain RoPE only"
            )
        if d.get("hidden_act", "silu") != "silu" or d.get("attention_bias") or d.get("mlp_bias"):
            raise ValueError("only hidden_act='silu' without attention or MLP biases is supported")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:  # lrkit's defaults would not match the checkpoint's tensors
            raise ValueError(
                f"config.json lacks key(s) {', '.join(missing)}; a Llama config needs "
                f"{', '.join(_REQUIRED)}"
            )
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("num_key_value_heads") is None:
            kw["num_key_value_heads"] = d["num_attention_heads"]
        for key in ("bos_token_id", "eos_token_id"):  # some checkpoints list several
            if isinstance(kw.get(key), list):
                kw[key] = kw[key][0]
        return cls(**kw)
