"""The decoded-sample cache serves exactly the samples the loaders decode, draw for draw (the
augmented-view draw included), keeps broken samples broken, and is rebuilt when the data or the
contract changes."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from training_helpers import write_synthetic

from min2real.contract import TINY_CONTRACT
from min2real.data import CarlaGarageDataset, DataProblem, NavsimDataset
from min2real.data.sample_cache import CachedSamples, cache_key


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("cache_data"), seed=5, frames=16)


def _same(a, b) -> bool:
    if isinstance(a, DataProblem) or isinstance(b, DataProblem):
        return a == b
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype and np.array_equal(a[k], b[k]) for k in a
    )


def test_cached_samples_equal_the_decoded_ones_draw_for_draw(roots, tmp_path):
    sim = CarlaGarageDataset([roots["sim"]], TINY_CONTRACT, augmented_view_probability=0.5)
    real = NavsimDataset(roots["real"], "trainval", TINY_CONTRACT)
    for dataset, name in ((sim, "sim"), (real, "real")):
        cached = CachedSamples(dataset, tmp_path, name)
        order = np.random.default_rng(0).permutation(len(dataset))[:12].tolist() * 2
        random.seed(7)
        decoded = [dataset[i] for i in order]
        random.seed(7)
        served = [cached[i] for i in order]
        assert all(_same(a, b) for a, b in zip(decoded, served)), name
    # Both camera views of a sim frame are in the cache, and a second opening reuses it.
    views = {bool(v) for v in range(2)}
    assert all(
        _same(sim.load(3, v), cached_sim.load(3, v))
        for cached_sim in [CachedSamples(sim, tmp_path, "sim")]
        for v in views
    )
    assert len(list(tmp_path.glob("sim-*"))) == 1


def test_a_broken_sample_stays_broken_and_a_changed_file_or_contract_makes_a_new_cache(roots, tmp_path):
    sim = CarlaGarageDataset([roots["sim"]], TINY_CONTRACT)
    key = cache_key(sim, 1)
    image = sim.route_dirs[0] + "/rgb/0002.jpg"
    original = open(image, "rb").read()  # noqa: SIM115
    try:
        with open(image, "wb") as handle:
            handle.write(original[: len(original) // 2])  # truncated JPEG
        broken = CarlaGarageDataset([roots["sim"]], TINY_CONTRACT)
        assert cache_key(broken, 1) != key  # the file changed: another cache
        cached = CachedSamples(broken, tmp_path, "sim")
        index = next(i for i in range(len(broken)) if broken.samples[i][1] == 2 and broken.samples[i][0] == 0)
        served = cached[index]
        assert isinstance(served, DataProblem) and served == broken[index] and cached.problems.total == 1
    finally:
        with open(image, "wb") as handle:
            handle.write(original)
    other_contract = dataclasses.replace(TINY_CONTRACT, steer_turn_threshold_deg=25.0)
    assert cache_key(CarlaGarageDataset([roots["sim"]], other_contract), 1) != key
