"""Fragmentation setups, metrics, and the saved state (the pipeline's first stage)."""

from __future__ import annotations

import numpy as np
import pytest

from migsim.kernel.fragment import (
    FragmentConfig,
    fragment,
    fragmentation_index,
    load_state,
    metrics,
    save_state,
    unusable_free_index,
)
from migsim.kernel.zone import FREE, KERNEL, LRU, MIGRATE_UNMOVABLE

MB = 1 << 20


def test_published_pattern_frees_every_other_page():
    z = fragment(FragmentConfig(node_bytes=64 * MB, reserved_bytes=2 * MB))
    view = z.state.reshape(-1, 512)
    assert np.all(view[:-1, 0::2] == FREE) and np.all(view[:-1, 1::2] == LRU)
    assert np.all(view[-1] == KERNEL) and z.migratetype[-1] == MIGRATE_UNMOVABLE
    m = metrics(z)
    assert m["free_pages"] == 31 * 256
    assert m["buddyinfo"] == [31 * 256] + [0] * 10  # nothing can merge
    assert m["unusable_index_9"] == 1.0
    assert m["fragmentation_index_9"] > 0.99  # failure would be due to fragmentation
    z.check()


def test_content_tags_are_the_index_in_the_mapping():
    z = fragment(FragmentConfig(node_bytes=8 * MB, reserved_bytes=2 * MB))
    lru = np.flatnonzero(z.state == LRU)
    assert np.array_equal(z.content_tag(lru), lru + 1)
    assert not np.any(z.content_tag(np.flatnonzero(z.state == FREE)))


def test_random_pattern_is_seeded_and_frees_the_ratio_per_region():
    cfg = FragmentConfig(node_bytes=32 * MB, pattern="random", free_ratio=0.25, seed=7)
    a, b = fragment(cfg), fragment(cfg)
    assert np.array_equal(a.state, b.state)
    c = fragment(FragmentConfig(node_bytes=32 * MB, pattern="random", free_ratio=0.25, seed=8))
    assert not np.array_equal(a.state, c.state)
    regions = a.state.reshape(-1, 512)[:-1]
    assert np.all((regions == FREE).sum(1) == 128)
    a.check()


def test_clustered_runs_leave_higher_order_blocks():
    z = fragment(FragmentConfig(node_bytes=16 * MB, pattern="clustered", run_pages=16))
    counts = metrics(z)["buddyinfo"]
    nregions = (16 * MB - 2 * MB) // (2 * MB)
    assert counts[4] == 16 * nregions and sum(counts[:4]) == 0
    z.check()


def test_partial_allocation_leaves_the_top_free():
    z = fragment(FragmentConfig(node_bytes=16 * MB, alloc_bytes=8 * MB, reserved_bytes=2 * MB))
    m = metrics(z)
    assert m["lru_pages"] == 4 * 256
    assert z.nr_full_blocks == 3  # 16M - 8M allocated - 2M kernel = 3 free pageblocks
    assert m["unusable_index_9"] < 0.5


def test_no_free_ratio_frees_nothing():
    z = fragment(FragmentConfig(node_bytes=8 * MB, free_ratio=0.0, reserved_bytes=2 * MB))
    assert z.nr_free == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alloc_bytes": 300 << 30}, "alloc_bytes: .*more memory than the node"),
        ({"free_ratio": 1.0}, r"free_ratio: must be in \[0, 1\)"),
        ({"free_ratio": -0.1}, r"free_ratio: must be in \[0, 1\)"),
        ({"pattern": "zigzag"}, "pattern: must be one of even, random, clustered"),
        ({"node_bytes": 3 * MB}, "node_bytes: must be at least"),
        ({"node_bytes": 5 * MB}, "node_bytes: must be a whole number of 2M pageblocks"),
    ],
)
def test_bad_config_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FragmentConfig(**{"node_bytes": 250 << 30, **kwargs}).resolved()


def test_save_and_load_round_trip(tmp_path):
    from migsim.kernel.compaction import Compactor

    cfg = FragmentConfig(node_bytes=16 * MB, pattern="random", seed=3)
    z = fragment(cfg)
    Compactor(z).alloc_pages_node(9)  # move some pages, so tags are not the identity
    z.drain_pages()
    path = tmp_path / "state" / "zone.npz"
    save_state(z, path, cfg)
    assert [p.name for p in path.parent.iterdir()] == ["zone.npz"]  # no temporary left
    z2, cfg2 = load_state(path)
    assert cfg2 == cfg.resolved()
    assert np.array_equal(z2.state, z.state) and np.array_equal(z2.tag, z.tag)
    assert np.array_equal(z2.skip, z.skip)
    assert metrics(z2) == metrics(z)
    z2.check()


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, something=np.arange(3))
    with pytest.raises(ValueError, match="not a migsim zone state"):
        load_state(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_state(tmp_path / "missing.npz")


def test_save_refuses_undrained_pcp(tmp_path):
    z = fragment(FragmentConfig(node_bytes=8 * MB))
    z.pcp_free(np.flatnonzero(z.state == LRU)[:3])
    with pytest.raises(ValueError, match="drain"):
        save_state(z, tmp_path / "z.npz")


def test_indices_on_hand_made_free_lists():
    counts = np.zeros(11, dtype=np.int64)
    counts[0], counts[9] = 512, 1  # half the free memory in one order-9 block
    assert unusable_free_index(counts, 9) == pytest.approx(0.5)
    assert fragmentation_index(counts, 9) == -1000  # a block of the order is free
    counts[9] = 0
    counts[0] = 1024
    # 1000 - (1000 + 1024 * 1000 / 512) / 1024 = 1000 - 2 = 998
    assert fragmentation_index(counts, 9) == 998
    assert fragmentation_index(np.zeros(11, dtype=np.int64), 9) == 0


def test_state_file_errors_name_what_is_wrong(tmp_path):
    """read_state_meta() / load_state() / save_state(): each refusal says why, in one line:
    an empty file, metadata that is not a mapping (format None), no page count, an array of
    the wrong shape, an undrained per-CPU list."""
    import json

    z = fragment(FragmentConfig(node_bytes=8 * MB))
    good = tmp_path / "good.npz"
    save_state(z, good)
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode())

    def write(name, **change):
        path = tmp_path / name
        with open(path, "wb") as fh:
            np.savez(fh, **(arrays | change))
        return path

    def blob(doc):
        return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)

    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is not a migsim zone state \(empty file\)"):
        load_state(tmp_path / "empty.npz")
    with pytest.raises(ValueError, match=r"has format None, expected"):
        load_state(write("list.npz", meta=blob([1, 2])))
    with pytest.raises(ValueError, match=r"\(no page count\)"):
        load_state(write("nopages.npz", meta=blob(meta | {"nr_pages": 0})))
    with pytest.raises(ValueError, match=r"array migratetype has the wrong shape or type"):
        load_state(write("shape.npz", migratetype=arrays["migratetype"][:-1]))
    z.pcp_free(np.flatnonzero(z.state == LRU)[:3])
    with pytest.raises(ValueError, match=r"^zone: drain the per-CPU lists before saving"):
        save_state(z, tmp_path / "z.npz")
