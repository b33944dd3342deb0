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
        """Ids of the UTF-8 bytes of ``text`` (or of raw ``bytes``), optionally with BOS/EOS.

        Never fails on a ``str``: a surrogate escape from :meth:`decode` (U+DC80..U+DCFF)
        becomes its byte again, and any other lone surrogate (not valid Unicode) becomes the
        three bytes UTF-8 would give it if it were allowed ("surrogatepass").
        """
        if isinstance(text, bytes | bytearray):
            data = bytes(text)
        elif isinstance(text, str):
            data = _utf8(text)
        else:
            raise TypeError(f"text must be a str or bytes; got {type(text).__name__}")
        return [self.bos_token_id] * bos + list(data) + [self.eos_token_id] * eos

    def decode_bytes(self, ids) -> bytes:
        """The bytes of ``ids``, special tokens dropped."""
        return bytes(int(i) for i in ids if int(i) < 256)

    def decode(self, ids) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 come back as surrogate escapes,
        so ``encode(decode(ids))`` gives the same bytes."""
        return self.decode_bytes(ids).decode("utf-8", errors="surrogateescape")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate outside the escape range
        out = bytearray()
        for ch in text:
            code = ord(ch)
            if 0xDC80 <= code <= 0xDCFF:  # an escaped byte, as decode() writes it
                out.append(code - 0xDC00)
            else:
                out += ch.encode("utf-8", errors="surrogatepass")
        return bytes(out)
