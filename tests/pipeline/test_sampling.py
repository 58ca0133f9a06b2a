"""Seeded sampling (pipeline/sampling.py): keys fixed by value and seed, and the order they give."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from crawl2model.pipeline.sampling import seeded_keys, seeded_order


def test_keys_are_fixed_by_value_and_seed():
    # pinned: a changed key would change every seeded sample and split of every run
    assert seeded_keys(["a", "b"], 0).tolist() == [1476484591048093314, 17452282848020163316]
    assert seeded_keys(["a"], 1).tolist() == [3999152711082659161]
    assert seeded_keys(pa.chunked_array([["a"], ["b"]]), 0).tolist() == seeded_keys(["a", "b"], 0).tolist()
    assert seeded_keys([], 0).dtype == np.uint64


def test_order_is_by_key_stable_and_cut_at_the_limit():
    values = [f"doc-{i}" for i in range(50)] + ["doc-7"]  # a repeated value: the same key
    order, keys = seeded_order(values, 3)
    assert sorted(order.tolist()) == list(range(51))
    assert (keys[order][1:] >= keys[order][:-1]).all()
    repeats = [i for i in order.tolist() if values[i] == "doc-7"]
    assert repeats == [7, 50]  # stable
    first, _ = seeded_order(values, 3, 10)
    assert first.tolist() == order[:10].tolist()
    assert seeded_order(values, 4)[0].tolist() != order.tolist()  # another seed, another order
