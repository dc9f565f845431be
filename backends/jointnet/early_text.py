"""The request's text encoded on a thread while the JointNet branches load (issue 24).

A process that knows its prompt before the weights load (`worldgen pano`: ``WorldPipeline.generate``
loads the backend for its first request) passes it as the ``text_hint`` setting: the text encoder
loads first, encodes on a second thread while the UNet branches are read, and the backend's first
``encode_prompt`` for that same text takes the result. The arithmetic is the one ``encode_prompt``
does, so the world is the same bit for bit (tests/backends/jointnet/test_early_text.py).
"""

from __future__ import annotations

import threading
from typing import Optional


class EarlyText:
    """``encode(texts) -> hidden states`` run now, on a thread, for ``(prompt, negative, do_cfg)``."""

    def __init__(self, encode, prompt: str, negative: Optional[str], do_cfg: bool) -> None:
        self.key = (prompt, negative or "", bool(do_cfg))
        self.result: Optional[tuple] = None
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, args=(encode,), name="worldgen-early-text", daemon=True)
        self.thread.start()

    def _run(self, encode) -> None:
        import torch

        try:
            with torch.no_grad():
                prompt, negative, do_cfg = self.key
                self.result = (encode([prompt]), encode([negative]) if do_cfg else None)
        except BaseException as exc:  # kept, and the text is encoded again the usual way (which raises it)
            self.error = exc

    def join(self) -> None:
        self.thread.join()

    def take(self, prompt, negative, do_cfg: bool) -> Optional[tuple]:
        """The hidden states when they were made for exactly this text, else None; used at most once."""
        if not isinstance(prompt, str) or (negative is not None and not isinstance(negative, str)):
            return None
        if (prompt, negative or "", bool(do_cfg)) != self.key:
            return None
        self.join()
        result, self.result = self.result, None
        return result


def start(text_hint, tokenizer, text_encoder) -> Optional[EarlyText]:
    """An ``EarlyText`` for the ``text_hint`` setting ``[prompt, negative, do_cfg]`` (None: nothing to start)."""
    if not text_hint or not isinstance(text_hint, (list, tuple)) or len(text_hint) != 3 or not text_hint[0]:
        return None
    prompt, negative, do_cfg = text_hint
    return EarlyText(lambda texts: text_hidden(tokenizer, text_encoder, texts), str(prompt),
                     None if negative is None else str(negative), bool(do_cfg))


def text_hidden(tokenizer, text_encoder, texts: list):
    """The text encoder's last hidden states for ``texts`` (what ``_encode_text`` casts to the model's dtype)."""
    tokens = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    device = text_encoder.device
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    return text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
