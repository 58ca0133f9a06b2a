"""The loader: packed windows over shard boundaries, seeded order, ranks, and resume mid-epoch."""
from __future__ import annotations

import numpy as np
import pytest

from crawl2model.train.data import TokenLoader
from crawl2model.train.tokens import TokenShard


def shards(*lengths: int) -> list[TokenShard]:
    """Shards holding the stream 0, 1, 2, ... split at the given lengths."""
    out, start = [], 0
    for length in lengths:
        tokens = np.arange(start, start + length, dtype=np.uint16)
        out.append(TokenShard(f"s{start}", tokens, np.array([0, length], dtype=np.int64)))
        start += length
    return out


def test_windows_are_the_stream_cut_every_seq_len_across_shards():
    loader = TokenLoader(shards(10, 7, 20), seq_len=4, batch_size=2, shuffle=False)
    inputs, targets = loader.next_batch()
    assert inputs.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and targets.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    inputs, _ = loader.next_batch()
    assert inputs.tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]]  # the window 8..12 spans the first two shards
    assert loader.windows == (37 - 1) // 4


def test_an_epoch_visits_every_window_once_in_a_seeded_order():
    first = TokenLoader(shards(101), seq_len=4, batch_size=5, seed=3)
    seen = [int(row[0]) // 4 for _ in range(first.steps_per_epoch) for row in first.next_batch()[0]]
    assert sorted(seen) == list(range(25)) and seen != list(range(25))
    again = TokenLoader(shards(101), seq_len=4, batch_size=5, seed=3)
    assert [int(row[0]) // 4 for _ in range(5) for row in again.next_batch()[0]] == seen
    assert [int(row[0]) // 4 for row in first.next_batch()[0]] != seen[:5]  # epoch 2 is shuffled anew


def test_ranks_together_see_the_whole_batch_of_one_process():
    one = TokenLoader(shards(401), seq_len=4, batch_size=8, seed=1)
    ranks = [TokenLoader(shards(401), seq_len=4, batch_size=4, seed=1, rank=r, world=2) for r in range(2)]
    for _ in range(3):
        whole = one.next_batch()[0].tolist()
        assert ranks[0].next_batch()[0].tolist() + ranks[1].next_batch()[0].tolist() == whole


def test_a_saved_state_resumes_on_the_next_batch():
    loader = TokenLoader(shards(401), seq_len=4, batch_size=8, seed=1)
    for _ in range(17):  # into the second epoch (12 steps each)
        loader.next_batch()
    state = loader.state_dict()
    expected = [loader.next_batch()[0].tolist() for _ in range(5)]
    resumed = TokenLoader(shards(401), seq_len=4, batch_size=8, seed=1)
    resumed.load_state_dict(state)
    assert [resumed.next_batch()[0].tolist() for _ in range(5)] == expected
    with pytest.raises(ValueError, match="other data"):
        TokenLoader(shards(300), seq_len=4, batch_size=8, seed=1).load_state_dict(state)


def test_too_few_tokens_for_a_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        TokenLoader(shards(20), seq_len=8, batch_size=4)
