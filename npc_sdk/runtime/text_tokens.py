"""Tokenising text for the BERT-family encoder (all-MiniLM-L6-v2): ids and attention mask, padded to a batch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

TEXT_MAX_TOKENS = (
    128  # a player's line: longer lines are truncated for the encoder only (the decoder sees all)
)
ROLE_MAX_TOKENS = 256  # persona text: MiniLM's own training length


def encoder_tokenizer(path: str) -> Tokenizer:
    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode_batch(
    tokenizer: Tokenizer, texts: Sequence[str], max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """[B, L] int64 input_ids and attention_mask, right-padded with [PAD] (id 0) to the longest text."""
    rows = []
    for text in texts:
        ids = tokenizer.encode(text).ids  # [CLS] ... [SEP]
        if len(ids) > max_tokens:
            ids = ids[: max_tokens - 1] + ids[-1:]  # keep [SEP] last
        rows.append(ids)
    width = max(len(r) for r in rows)
    input_ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return input_ids, mask
