"""Hand cases of kernel/fragment.py: the indices of mm/vmstat.c on hand-made free lists, the
config's validation at each bound, the freeing patterns' offsets and the state file's
refusals, each expectation derived by hand in its docstring (never the code's own output)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from migsim.kernel.fragment import (
    FragmentConfig,
    default_reserved_bytes,
    fragment,
    fragmentation_index,
    free_offsets,
    load_state,
    read_state_meta,
    save_state,
    unusable_free_index,
)
from migsim.kernel.zone import FREE, KERNEL, LRU

MB = 1 << 20
PB = 2 * MB
TAIL = (
    "; make one with the pipeline's fragment stage (results/state/) or "
    "migsim.kernel.fragment.save_state"
)


def counts_of(**orders: int) -> np.ndarray:
    """Free blocks per order (o0=3, o2=1, ...) as /proc/buddyinfo lists them."""
    c = np.zeros(11, dtype=np.int64)
    for key, n in orders.items():
        c[int(key[1:])] = n
    return c


@pytest.mark.parametrize(
    ("orders", "order", "expected"),
    [
        # mm/vmstat.c unusable_free_index(): (free_pages - (suitable << order)) / free_pages,
        # suitable = blocks of order >= `order` counted in units of 2^order
        ({}, 0, 0.0),  # no free memory: 0 by definition
        ({"o0": 1}, 0, 0.0),  # one free page serves an order-0 request
        ({"o0": 1}, 1, 1.0),  # ... but none of order 1
        ({"o0": 3, "o2": 1}, 0, 0.0),  # 7 free pages, all usable at order 0
        ({"o0": 3, "o2": 1}, 1, 3 / 7),  # the order-2 block = 2 order-1 units: 3 pages left
        ({"o0": 3, "o2": 1}, 2, 3 / 7),
        ({"o0": 3, "o2": 1}, 3, 1.0),
        ({"o1": 2, "o10": 1}, 10, 4 / 1028),
        ({"o1": 2, "o10": 1}, 9, 4 / 1028),  # order 10 = 2 order-9 units
    ],
)
def test_unusable_free_index_by_hand(orders, order, expected):
    assert unusable_free_index(counts_of(**orders), order) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("orders", "order", "expected"),
    [
        # __fragmentation_index(): 0 without free blocks, -1000 when a block of the order is
        # free, else 1000 - (1000 + free_pages * 1000 / 2^order) / free_blocks (integer
        # divisions, as div_u64)
        ({}, 0, 0),
        ({"o0": 1}, 0, -1000),
        ({"o0": 1}, 1, 1000 - (1000 + 500) // 1),  # = -500
        ({"o0": 4}, 1, 1000 - (1000 + 4000 // 2) // 4),  # = 250
        ({"o0": 3, "o1": 1}, 2, 1000 - (1000 + 5000 // 4) // 4),  # 5 pages, 4 blocks: 438
        ({"o0": 3, "o1": 1}, 1, -1000),
        ({"o8": 3}, 10, 1000 - (1000 + 768000 // 1024) // 3),  # = 417
        ({"o9": 1}, 10, 1000 - (1000 + 512000 // 1024) // 1),  # = -500
    ],
)
def test_fragmentation_index_by_hand(orders, order, expected):
    assert fragmentation_index(counts_of(**orders), order) == expected


@pytest.mark.parametrize("order", [-1, 11])
def test_fragmentation_index_rejects_an_order_outside_the_buddy_orders(order):
    with pytest.raises(ValueError, match=rf"^order: must be in 0\.\.10, got {order}$"):
        fragmentation_index(counts_of(o0=1), order)


def test_default_reserved_bytes_by_hand():
    """0.8% of the node rounded up to whole 2M pageblocks, at least one: 250 GiB -> exactly
    2 GiB; 4M -> 33,554 B -> one pageblock; 1 GiB -> 8,589,934 B -> 5 pageblocks (10M)."""
    assert default_reserved_bytes(250 << 30) == 2 << 30
    assert default_reserved_bytes(4 * MB) == PB
    assert default_reserved_bytes(1 << 30) == 10 * MB


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"reserved_bytes": 8 * MB},
            "reserved_bytes: must be a whole number of 2M pageblocks "
            "in [0, node size), got 8388608",
        ),  # fmt: skip
        (
            {"reserved_bytes": -PB},
            "reserved_bytes: must be a whole number of 2M pageblocks "
            "in [0, node size), got -2097152",
        ),  # fmt: skip
        (
            {"reserved_bytes": MB},
            "reserved_bytes: must be a whole number of 2M pageblocks "
            "in [0, node size), got 1048576",
        ),  # fmt: skip
        ({"alloc_bytes": 4097}, "alloc_bytes: must be a whole number of 4K pages >= 0, got 4097"),
        ({"alloc_bytes": -4096}, "alloc_bytes: must be a whole number of 4K pages >= 0, got -4096"),
        (
            {"alloc_bytes": 6 * MB + 4096},
            "alloc_bytes: 6295552 is more memory than the node can "
            "give (at most 6M of the 8M node; the rest is kernel memory)",
        ),  # fmt: skip
        ({"free_ratio": True}, "free_ratio: must be in [0, 1), got True"),
        ({"run_pages": 0}, "run_pages: must be in 1..512, got 0"),
        ({"run_pages": 513}, "run_pages: must be in 1..512, got 513"),
        ({"node_bytes": True}, "node_bytes: must be at least 4M (two pageblocks), got True"),
        ({"node_bytes": 2 * MB}, "node_bytes: must be at least 4M (two pageblocks), got 2097152"),
    ],
)
def test_config_bounds_and_their_messages(kwargs, message):
    """An 8M node with 2M reserved: the reserve must be in [0, 8M) and whole pageblocks; the
    allocation whole 4K pages and at most 8M - 2M."""
    cfg = FragmentConfig(**({"node_bytes": 8 * MB, "reserved_bytes": PB} | kwargs))
    with pytest.raises(ValueError) as err:
        cfg.resolved()
    assert str(err.value) == message


def test_config_accepts_each_bound():
    """The largest reserve (node - one pageblock), no reserve, the whole allowance, run
    lengths 1 and 512 and a ratio of 0 all resolve, with the defaults filled."""
    node = 8 * MB
    assert FragmentConfig(node_bytes=node, reserved_bytes=node - PB).resolved().alloc_bytes == PB
    r = FragmentConfig(node_bytes=node, reserved_bytes=0).resolved()
    assert (r.alloc_bytes, r.reserved_bytes) == (node, 0)
    r = FragmentConfig(node_bytes=node).resolved()  # default reserve: one pageblock
    assert (r.alloc_bytes, r.reserved_bytes) == (node - PB, PB)
    for run in (1, 512):
        assert FragmentConfig(node_bytes=node, run_pages=run).resolved().run_pages == run
    assert FragmentConfig(node_bytes=node, free_ratio=0).resolved().free_ratio == 0.0


def test_free_offsets_by_hand():
    """even: k = round(r x 512) offsets i x 512 // k; clustered: ceil(k / run) runs whose starts
    are i x (512 // run) // nruns x run, cut to k; random: k distinct sorted offsets, all 512
    when k rounds to 512."""
    rng = np.random.default_rng(0)

    def offs(**kw):
        return free_offsets(FragmentConfig(node_bytes=8 * MB, **kw).resolved(), rng, 3)

    even = offs(free_ratio=3 / 512)
    assert even.shape == (3, 3) and (even == [0, 170, 341]).all()
    # k = 128, run 16: 8 runs in 32 slots, starts 0, 4, 8, .. 28 slots = 0, 64, .. 448
    clustered = offs(free_ratio=0.25, pattern="clustered")
    want = [64 * i + j for i in range(8) for j in range(16)]
    assert (clustered == want).all()
    # k = 100, run 16: 7 runs, starts (0, 4, 9, 13, 18, 22, 27) x 16, the last run cut to 4
    clustered = offs(free_ratio=100 / 512, pattern="clustered")
    starts = [0, 4, 9, 13, 18, 22, 27]
    want = [16 * s + j for s in starts for j in range(16)][:100]
    assert (clustered == want).all()
    rand = offs(free_ratio=0.1, pattern="random")  # k = round(51.2) = 51
    assert rand.shape == (3, 51)
    for row in rand:
        assert (np.diff(row) > 0).all() and row[0] >= 0 and row[-1] < 512
    assert not (rand[0] == rand[1]).all()  # drawn per region
    # a second code path: the k smallest of each region's 512 float32 keys by a full argsort
    for k in (1, 2, 51, 256, 500, 511):  # 64 regions each
        keys = np.random.default_rng(k).random((64, 512), dtype=np.float32)
        smallest = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :k], axis=1)
        cfg = FragmentConfig(node_bytes=8 * MB, free_ratio=k / 512, pattern="random").resolved()
        assert (free_offsets(cfg, np.random.default_rng(k), 64) == smallest).all()
    every = offs(free_ratio=0.9995, pattern="random")  # k = round(511.74) = 512
    assert (every == np.arange(512)).all()
    assert offs(free_ratio=0.0).shape == (3, 0)
    assert free_offsets(FragmentConfig(node_bytes=8 * MB).resolved(), rng, 0).size == 0


@pytest.mark.parametrize("pattern", ["even", "clustered", "random"])
def test_fragment_frees_the_offsets_in_every_region_and_the_partial_one(pattern):
    """A 16M node, 2M reserved at the top (KERNEL), 9M allocated from pfn 0: regions 0-3 are
    whole and lose the pattern's 128 pages each (free_ratio 0.25), region 4 is half written
    (pfns 2048..2303) and loses only its offsets below 256; pfns 2304.. up to the reserve
    stay free."""
    cfg = FragmentConfig(
        node_bytes=16 * MB, alloc_bytes=9 * MB, reserved_bytes=PB, free_ratio=0.25,
        pattern=pattern, seed=5,
    )  # fmt: skip
    z = fragment(cfg)
    offs = free_offsets(cfg.resolved(), np.random.default_rng(5), 5)
    st = z.state
    assert (st[3584:] == KERNEL).all()
    assert (st[2304:3584] == FREE).all()
    for r in range(4):
        region = st[512 * r : 512 * (r + 1)]
        assert set(np.flatnonzero(region == FREE)) == set(offs[r].tolist())
        assert np.count_nonzero(region == LRU) == 384
    part = st[2048:2304]
    assert set(np.flatnonzero(part == FREE)) == {int(o) for o in offs[4] if o < 256}
    assert np.count_nonzero(part == LRU) == 256 - sum(int(o) < 256 for o in offs[4])
    z.check()


def test_state_file_refusals_in_full(tmp_path):
    """Each refusal names the file and why: a file that is not a zip (magic), an empty one, a
    pickled metadata array (never unpickled: numpy's own ValueError), another format number,
    a corrupted array (the zip's CRC check: BadZipFile), a missing array."""
    z = fragment(FragmentConfig(node_bytes=8 * MB))
    good = tmp_path / "good.npz"
    save_state(z, good)
    assert read_state_meta(good)["nr_pages"] == 2048
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode())

    def write(name, **change):
        path = tmp_path / name
        with open(path, "wb") as fh:
            np.savez(fh, **{k: v for k, v in (arrays | change).items() if v is not None})
        return path

    def refusal(path):
        with pytest.raises(ValueError) as err:
            load_state(path)
        return str(err.value)

    text = tmp_path / "text.npz"
    text.write_bytes(b"hello world")
    assert refusal(text) == f"state: {text} is not a migsim zone state (not an .npz archive)" + TAIL
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    assert refusal(empty) == f"state: {empty} is not a migsim zone state (empty file)" + TAIL
    pickled = write("pickled.npz", meta=np.array([meta], dtype=object))
    msg = refusal(pickled)
    assert msg.startswith(f"state: {pickled} is not a migsim zone state (ValueError: Object arrays")
    assert msg.endswith(TAIL)
    fmt = write("fmt.npz", meta=np.frombuffer(json.dumps(meta | {"format": 2}).encode(), np.uint8))
    assert refusal(fmt) == f"state: {fmt} has format 2, expected 1"
    missing = write("missing.npz", skip=None)
    assert refusal(missing).startswith(f"state: {missing} is not a migsim zone state (")
    assert "skip" in refusal(missing)
    # flip the last byte of state.npy's data (stored, uncompressed): its CRC no longer holds
    crc = tmp_path / "crc.npz"
    crc.write_bytes(good.read_bytes())
    with zipfile.ZipFile(crc) as zf:
        info = zf.getinfo("state.npy")
    with open(crc, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), dtype="<u2")
        last = info.header_offset + 30 + int(name_len) + int(extra_len) + info.compress_size - 1
        fh.seek(last)
        byte = fh.read(1)
        fh.seek(last)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert refusal(crc) == (
        f"state: {crc} is not a migsim zone state (BadZipFile: Bad CRC-32 for file "
        f"'state.npy')" + TAIL
    )
