"""Byte-level tokenizer: token id = byte value (0..255), then special tokens.

It needs no vocabulary file, never fails on any text (UTF-8 bytes, or raw bytes), and
round-trips exactly. The price is longer sequences than a BPE tokenizer; the gain for the
course is a tiny embedding table, so nearly all parameters sit in the linear layers.
"""

from __future__ import annotations

__all__ = ["ByteTokenizer"]


class ByteTokenizer:
    """``encode(text) -> list[int]`` and ``decode(ids) -> str``; BOS = 256, EOS = 257."""

    bos_token_id = 256
    eos_token_id = 257
    vocab_size = 258

    def encode(self, text: str | bytes, *, bos: bool = False, eos: bool = False) -> list[int]:
        data = text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogateescape")
        return [self.bos_token_id] * bos + list(data) + [self.eos_token_id] * eos

    def decode_bytes(self, ids) -> bytes:
        """The bytes of ``ids``, special tokens dropped."""
        return bytes(int(i) for i in ids if int(i) < 256)

    def decode(self, ids) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 come back as surrogate escapes,
        so ``encode(decode(ids))`` gives the same bytes."""
        return self.decode_bytes(ids).decode("utf-8", errors="surrogateescape")
