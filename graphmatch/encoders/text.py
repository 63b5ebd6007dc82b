"""Text-side encoders: token ids → word (node) embeddings."""
from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch_geometric.data import Batch

from graphmatch.graphs import to_dense
from graphmatch.encoders.registry import ENCODERS
from graphmatch.nn.functional import l2norm
from graphmatch.options import option
from graphmatch.structures import NodeEmb

log = logging.getLogger(__name__)


def load_word_vectors(
    path: Union[str, Path], words: Sequence[str], *, dim: Optional[int] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read word vectors for ``words`` from a local GloVe-style text file (``.txt`` or ``.txt.gz``).

    Each line is ``word v_1 ... v_d``. Only the rows for ``words`` are kept, so a large file costs
    one pass and little memory.

    Returns:
        ``(vectors [len(words), d], found bool [len(words)])``; rows not found are zero.

    Raises:
        FileNotFoundError: the file does not exist. ValueError: a malformed line (named by number)
        or a dimension that differs from ``dim``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word-vector file not found: {path}")
    index = {w: i for i, w in enumerate(words)}
    vectors: Optional[torch.Tensor] = None
    found = torch.zeros(len(words), dtype=torch.bool)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:  # type: ignore[operator]
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec-style header "count dim"
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'word v1 ... vd', got {line[:60]!r}")
            d = len(parts) - 1
            if vectors is None:
                if dim is not None and d != dim:
                    raise ValueError(f"{path}: vectors have {d} dimensions, expected {dim}")
                vectors = torch.zeros(len(words), d)
            elif d != vectors.size(1):
                raise ValueError(f"{path}:{lineno}: {d} values, earlier lines have {vectors.size(1)}")
            i = index.get(parts[0])
            if i is not None and not found[i]:
                try:
                    vectors[i] = torch.tensor([float(v) for v in parts[1:]])
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: non-numeric value in the vector of {parts[0]!r}") from None
                found[i] = True
    if vectors is None:
        raise ValueError(f"{path}: no vectors in the file")
    return vectors, found


@dataclass
class BiGRUConfig:
    """Config keys of the ``bigru`` text encoder (``model.text``)."""

    word_dim: int = option(300, lo=1)
    num_layers: int = option(1, lo=1)
    bidirectional: bool = True
    dropout: float = option(0.0, lo=0, hi=1, hi_open=True, note="0: no dropout")
    word_vectors: Optional[str] = option(None, help="local word-vector file (GloVe text format); words not in it stay random")
    freeze_word_vectors: bool = False
    no_txtnorm: bool = False


@ENCODERS.register("bigru", config=BiGRUConfig)
class BiGRUTextEncoder(nn.Module):
    """SCAN's ``EncoderText``: word embedding + (bi-)GRU; the two directions are averaged; l2-norm.

    Args:
        vocab_size: number of token ids (index 0 is padding).
        word_dim: word embedding size. embed_dim: output size D.
        num_layers, bidirectional, dropout: GRU options.
        word_vectors: a local GloVe-format file whose vectors initialise the embedding rows of the
            words of ``vocab`` it holds (read by :meth:`load_pretrained`, which the model builder
            calls for training, not when a checkpoint is rebuilt). freeze_word_vectors: keep them fixed.
        vocab: the :class:`~graphmatch.data.vocab.Vocabulary` (needed with ``word_vectors``).
        no_txtnorm: skip the final l2 normalisation.

    Shapes:
        input: a PyG ``Batch`` of ``TextGraph`` with ``x`` [sum L_i] token ids (word nodes);
        output: :class:`~graphmatch.structures.NodeEmb` ``x`` [B, L_max, D], ``mask`` [B, L_max].
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        word_dim: int,
        embed_dim: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        word_vectors: Optional[str] = None,
        freeze_word_vectors: bool = False,
        vocab: Any = None,
        no_txtnorm: bool = False,
    ) -> None:
        super().__init__()
        if word_vectors and vocab is None:
            raise ValueError("BiGRUTextEncoder: word_vectors needs the vocabulary (vocab=...)")
        self.word_dim, self.word_vectors, self.freeze_word_vectors = word_dim, word_vectors, freeze_word_vectors
        self._words = list(vocab.words) if (word_vectors and vocab is not None) else None
        self.embed_dim, self.bidirectional, self.no_txtnorm = embed_dim, bidirectional, no_txtnorm
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.rnn = nn.GRU(
            word_dim, embed_dim, num_layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.rnn.reset_parameters()

    def load_pretrained(self) -> None:
        """Initialise the embedding from ``word_vectors`` (if set) for the vocabulary's words."""
        if not self.word_vectors:
            return
        vectors, found = load_word_vectors(self.word_vectors, self._words, dim=self.word_dim)
        n = self.init_word_vectors(vectors, found, freeze=self.freeze_word_vectors)
        log.info("word vectors: %d of %d vocabulary words found in %s", n, len(self._words), self.word_vectors)

    def init_word_vectors(self, vectors: torch.Tensor, found: torch.Tensor, *, freeze: bool = False) -> int:
        """Copy pretrained rows where ``found``; returns how many were copied."""
        if vectors.shape != self.embed.weight.shape:
            raise ValueError(
                f"word vectors are {tuple(vectors.shape)}, the embedding is {tuple(self.embed.weight.shape)} "
                "(set model.text.word_dim to the vectors' dimension)"
            )
        with torch.no_grad():
            self.embed.weight[found] = vectors[found].to(self.embed.weight)
        self.embed.weight.requires_grad_(not freeze)
        return int(found.sum())

    def forward(self, graphs: Batch) -> NodeEmb:
        tokens, mask = to_dense(graphs)  # [B, L], pad id 0
        lengths = mask.sum(1)
        if (lengths == 0).any():
            bad = torch.nonzero(lengths == 0).flatten().tolist()[:5]
            raise ValueError(f"captions with no words cannot be encoded (batch rows {bad})")
        emb = self.embed(tokens)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.size(1))
        if self.bidirectional:
            half = out.size(2) // 2
            out = (out[:, :, :half] + out[:, :, half:]) / 2
        if not self.no_txtnorm:
            out = l2norm(out, dim=-1)
        out = out * mask.unsqueeze(-1)
        return NodeEmb(out, mask)
