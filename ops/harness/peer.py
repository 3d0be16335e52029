"""The same weights in PyTorch (``BertModel`` and the pair head, as sentence-transformers runs
them): the peer the gateway's ONNX path is timed against (``torch`` and ``transformers``,
the ``bench`` extra). Feeds are tokenized with the model directory's ``tokenizer.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CLS_ID = 101
# Shipped graph: logits = SCALE * (cosine - SHIFT).
PAIR_SCALE = 20.0
PAIR_SHIFT = 0.5

Feed = dict[str, np.ndarray]
Runner = Callable[[Feed], np.ndarray]


def load_tokenizer(model_dir: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def encode_batches(tok: Any, pairs: list[tuple[str, str]], batch: int) -> list[Feed]:
    feeds: list[Feed] = []
    for start in range(0, len(pairs), batch):
        encs = tok.encode_batch(pairs[start : start + batch])
        feeds.append(
            {
                "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
            }
        )
    return feeds


def split_pair(feed: Feed) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Same split as the ONNX graph: ([CLS] q [SEP]) and ([CLS] d [SEP])."""
    ids, am, tt = feed["input_ids"], feed["attention_mask"], feed["token_type_ids"]
    q_mask = am * (1 - tt)
    q_len = q_mask.sum(1)
    d_len = (am * tt).sum(1)
    lq, ld = int(q_len.max()), int(d_len.max()) + 1
    d_ids = np.zeros((ids.shape[0], ld), dtype=np.int64)
    d_mask = np.zeros_like(d_ids)
    for i in range(ids.shape[0]):
        n = int(d_len[i])
        d_ids[i, 0] = CLS_ID
        d_ids[i, 1 : 1 + n] = ids[i, q_len[i] : q_len[i] + n]
        d_mask[i, : 1 + n] = 1
    return ids[:, :lq], q_mask[:, :lq], d_ids, d_mask


def torch_runner(weights: Path, threads: int, bf16: bool) -> Runner:
    import torch
    import torch.nn.functional as F
    from transformers import BertModel

    torch.set_num_threads(threads)
    bert = BertModel.from_pretrained(
        str(weights), add_pooling_layer=False, attn_implementation="sdpa"
    ).eval()  # type: ignore[no-untyped-call,unused-ignore]

    def encode(ids: np.ndarray, mask: np.ndarray) -> Any:
        t_ids = torch.from_numpy(ids)
        t_mask = torch.from_numpy(mask)
        h = bert(
            input_ids=t_ids, attention_mask=t_mask, token_type_ids=torch.zeros_like(t_ids)
        ).last_hidden_state.float()
        m = t_mask.unsqueeze(-1).to(h.dtype)
        emb = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        return F.normalize(emb, p=2.0, dim=-1)

    def run(feed: Feed) -> np.ndarray:
        q_ids, q_mask, d_ids, d_mask = split_pair(feed)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            q = encode(q_ids, q_mask)
            d = encode(d_ids, d_mask)
        cos = (q * d).sum(-1)
        out: np.ndarray = (PAIR_SCALE * (cos - PAIR_SHIFT)).numpy().astype(np.float32)
        return out

    return run
