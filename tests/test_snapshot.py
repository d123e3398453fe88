"""The snapshot of physical memory: parsing /proc text files, kinds from kpageflags, buddy
orders, pageblock validity and migratetype estimates, saved copies (--from DIR) and the file
format. Synthetic inputs with hand-known answers; the real machine in test_host_prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from host_snapshot_util import (
    FREE,
    HEAD,
    LRU_ANON,
    LRU_FILE,
    SLAB,
    TAIL,
    buddyinfo,
    pagetypeinfo,
    snapshot,
    write_dir,
    zoneinfo,
)  # fmt: skip

from migsim import cli
from migsim.host import snapshot as S

PB = 512


def _machine() -> np.ndarray:
    """8 pageblocks: 0 slab + free, 1 anon, 2 a THP, 3..4 a blank run (kernel memory between
    initialised blocks), 5 file + free, 6..7 free (one order-10 block)."""
    f = np.zeros(8 * PB, dtype=np.uint64)
    f[:16] = SLAB
    f[16:PB] = FREE
    f[PB : 2 * PB] = LRU_ANON
    f[2 * PB : 3 * PB] = LRU_ANON | TAIL | (1 << S.KPF_THP)
    f[2 * PB] = LRU_ANON | HEAD | (1 << S.KPF_THP)
    f[5 * PB : 5 * PB + 100] = LRU_FILE
    f[5 * PB + 100 : 6 * PB] = FREE
    f[6 * PB :] = FREE
    return f


def test_kinds_orders_and_checks():
    f = _machine()
    types = {"Unmovable": 3, "Movable": 5}
    snap = S.build(f, None, zoneinfo(len(f), 1940), pagetypeinfo(types))
    k = snap.kind_counts()
    assert k["slab"] == 16 and k["lru_anon"] == 1024 and k["lru_file"] == 100
    assert k["free"] == 496 + 412 + 1024 and k["kernel"] == 1024 and k["hole"] == 0
    assert snap.order[2 * PB] == 9 and (snap.order[2 * PB + 1 : 3 * PB] == S.TAIL).all()
    # blank pageblocks 3, 4 lie between initialised ones and are shorter than a section
    assert snap.block_valid.all()
    # pagetypeinfo's 3 Unmovable pageblocks are the 3 with unmovable content (the blank ones
    # are allocated kernel memory)
    assert snap.block_migratetype.tolist() == [0, 1, 1, 0, 0, 1, 1, 1]
    z = snap.zones[0]
    # free 16..511: orders 4, 5, 6, 7, 8 (at 16, 32, 64, 128, 256); in block 5 the pfns
    # 100..511 of the block: orders 2, 3, 4, 7, 8 (at 100, 104, 112, 128, 256); 3072..4095:
    # one order-10 block
    assert snap.buddy_counts(z).tolist() == [0, 0, 1, 1, 2, 1, 1, 2, 2, 0, 1]
    assert int((snap.buddy_counts(z) * (1 << np.arange(11))).sum()) == 1932
    check = snap.check()[0]
    assert check["valid_blocks"] == check["pagetypeinfo_blocks"] == 8
    assert check["estimated_block_counts"] == check["pagetypeinfo_block_counts"]


def test_migratetype_ranking_by_hand():
    """estimate_migratetypes() with pagetypeinfo's 2 non-movable pageblocks among 5:
    0 holds 20 slab pages among 480 file pages (a MOVABLE block with stolen pages: more LRU
    than unmovable pages, never taken); 1 is blank (512 pages without flags: kernel memory or
    movable pages in transit); 2 holds 100 slab pages and 412 free ones; 3 holds 10 page-table
    pages, 2 blank and 500 free; 4 is anon. By unmovable less LRU pages (0: -460, 1: 0, 2: 100,
    3: 10, 4: -512) blocks 2 and 3 are taken; ranked with the slab pages the blank block 1
    (512 unmovable-looking pages) would have taken 3's place and block 0 (20) would have come
    before 3 (12). Without pagetypeinfo counts 1, 2 and 3 are UNMOVABLE."""
    f = np.zeros(5 * PB, dtype=np.uint64)
    f[:20] = SLAB
    f[20:PB] = LRU_FILE
    f[2 * PB : 2 * PB + 100] = SLAB
    f[2 * PB + 100 : 3 * PB] = FREE
    f[3 * PB : 3 * PB + 10] = 1 << S.KPF_PGTABLE
    f[3 * PB + 12 : 4 * PB] = FREE
    f[4 * PB :] = LRU_ANON
    nr_free = int(((f & FREE) != 0).sum())
    snap = S.build(
        f,
        None,
        zoneinfo(len(f), nr_free),
        pagetypeinfo({"Unmovable": 1, "Reclaimable": 1, "Movable": 3}),
    )
    assert snap.block_migratetype.tolist() == [1, 1, 0, 2, 1]
    bare = S.build(f, None, zoneinfo(len(f), nr_free), "")
    assert bare.block_migratetype.tolist() == [1, 0, 0, 0, 1]


def test_reserved_pageblocks_stay_movable_in_the_estimate():
    """4 pageblocks, pagetypeinfo's one Unmovable among them: 0 is wholly PG_reserved (a memory
    map: memmap_init_range() made it MOVABLE and no allocation claimed it), 1 holds 10 slab
    pages and 502 free ones, 2 is anon, 3 free. Block 1 is the Unmovable one (10 unmovable
    pages less 0 LRU); block 0 counts neither unmovable nor blank pages, so it is never
    taken (with the reserved pages counted it had 512 and took the place)."""
    f = np.zeros(4 * PB, dtype=np.uint64)
    f[:PB] = 1 << S.KPF_RESERVED
    f[PB : PB + 10] = SLAB
    f[PB + 10 : 2 * PB] = FREE
    f[2 * PB : 3 * PB] = LRU_ANON
    f[3 * PB :] = FREE
    snap = snapshot(f, types={"Unmovable": 1, "Movable": 3})
    assert snap.kind_counts()["reserved"] == PB
    assert snap.block_migratetype.tolist() == [1, 0, 1, 1]


def test_buddy_decomposition_by_hand():
    free = np.zeros(2048, dtype=bool)
    free[1:4] = True  # orders 0 (pfn 1) and 1 (pfns 2-3)
    free[1024:2048] = True  # one order-10 block
    assert S.buddy_decomposition(free).tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_long_blank_run_is_a_hole_and_ends_the_zone():
    f = np.full(3 * 64 * PB, FREE, dtype=np.uint64)
    f[64 * PB : 128 * PB] = 0  # a whole section without any initialised page: a hole
    f[150 * PB :] = 0  # never initialised up to the end
    snap = S.build(f, None, zoneinfo(len(f), 0), "")
    v = snap.block_valid
    assert v[:64].all() and not v[64:128].any() and v[128:150].all() and not v[150:].any()
    assert (snap.kind[64 * PB : 128 * PB] == S.HOLE).all()


def test_zoneinfo_parsing():
    z = S.parse_zoneinfo(zoneinfo(4096, 100, start=4096, wmark_min=42))
    assert len(z) == 1  # the empty Movable zone is left out
    z = z[0]
    assert (z.name, z.start_pfn, z.spanned, z.nr_free) == ("Normal", 4096, 4096, 100)
    assert (z.wmark_min, z.wmark_low, z.wmark_high, z.pcp_high, z.pcp_batch) == (
        42,
        44,
        46,
        1000,
        63,
    )
    with pytest.raises(ValueError, match="zoneinfo"):
        S.parse_zoneinfo("garbage\n")
    t = S.parse_pagetypeinfo(pagetypeinfo({"Movable": 7, "Unmovable": 1}))
    assert t[(0, "Normal")]["Movable"] == 7
    assert S.parse_buddyinfo(buddyinfo([1, 2, 3]))[(0, "Normal")] == [1, 2, 3]


def test_from_dir_save_load_and_cli(tmp_path, capsys):
    f = _machine()
    count = np.where((f & (1 << S.KPF_LRU)) != 0, 1, 0).astype(np.uint64)
    texts = {
        "zoneinfo": zoneinfo(len(f), 1932),
        "pagetypeinfo": pagetypeinfo({"Unmovable": 1, "Movable": 7}),
        "buddyinfo": buddyinfo([0, 0, 1, 1, 2, 1, 1, 2, 2, 0, 1]),
    }
    d = write_dir(tmp_path / "raw", f, count, texts)
    snap = S.from_dir(d)
    assert snap.mapcount is not None and int(snap.mapcount.sum()) == 1024 + 100
    out = tmp_path / "snap.npz"
    snap.save(out)
    back = S.Snapshot.load(out)
    for name in ("kind", "order", "mapcount", "block_valid", "block_migratetype", "pflags"):
        assert np.array_equal(getattr(back, name), getattr(snap, name)), name
    assert back.zones == snap.zones
    # the command line: snapshot --from, then predict from the file and from the directory
    assert cli.main(["host", "snapshot", str(tmp_path / "c.npz"), "--from", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["check"][0]["free_pages"] == 1932
    assert cli.main(["host", "predict", "--snapshot", str(out), "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert cli.main(["host", "predict", "--from", str(d), "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["predicted"] == b["predicted"] and set(a["predicted"]) >= {"pgmigrate_success"}
    assert a["seconds"] > 0


def test_bad_inputs_say_what_is_wrong(tmp_path, capsys):
    assert cli.main(["host", "predict", "--from", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "--from" in err and "not a directory" in err and err.count("\n") == 1
    (tmp_path / "d").mkdir()
    assert cli.main(["host", "predict", "--from", str(tmp_path / "d")]) == 2
    assert "kpageflags" in capsys.readouterr().err
    (tmp_path / "x.npz").write_bytes(b"not a snapshot")
    assert cli.main(["host", "predict", "--snapshot", str(tmp_path / "x.npz")]) == 2
    assert "snapshot" in capsys.readouterr().err


def test_kpageflags_may_stop_where_the_pageblocks_of_pagetypeinfo_end(tmp_path):
    # a zone whose span is 8 pageblocks but pagetypeinfo counts 4 (memory initialised lazily):
    # 4 pageblocks of flags are enough, the rest are holes; 3 are not enough
    f = np.full(4 * PB, FREE, dtype=np.uint64)
    texts = {"zoneinfo": zoneinfo(8 * PB, 4 * PB), "pagetypeinfo": pagetypeinfo({"Movable": 4})}
    snap = S.from_dir(write_dir(tmp_path / "a", f, None, texts))
    assert snap.block_valid.tolist() == [True] * 4 + [False] * 4
    with pytest.raises(ValueError, match="kpageflags: 1536 pfns"):
        S.from_dir(write_dir(tmp_path / "b", f[: 3 * PB], None, texts))


def test_without_root_snapshot_and_twin_exit_3_with_the_reason(tmp_path, capsys, monkeypatch):
    import os

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["host", "snapshot", str(tmp_path / "s.npz")]) == 3
    assert "needs root" in capsys.readouterr().err
    assert cli.main(["host", "twin", "--size", "64M", "--runs", "1"]) == 3
    assert "root" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_kpagecount_is_read_only_where_pages_are_mapped(tmp_path):
    """read_mapped_counts(): the COUNT_UNIT ranges holding a KPF_MMAP page are read from the
    file, every other pfn is 0 (a map count there would be a page mapped after kpageflags
    was read)."""
    from migsim.host import snapshot as S

    u = S.COUNT_UNIT
    n = 5 * u + 7  # a partial last unit
    count = np.arange(1, n + 1, dtype="<u8")
    (tmp_path / "kpagecount").write_bytes(count.tobytes())
    flags = np.zeros(n, dtype="<u8")
    mmap = np.uint64(1 << S.KPF_MMAP)
    flags[[u + 3, 2 * u, 5 * u + 6]] = mmap  # units 1, 2 (one run) and the last one
    out = np.full(n + 10, 99, dtype="<u8")
    assert S.read_mapped_counts(tmp_path / "kpagecount", flags, out) == 2 * u + 7
    want = np.zeros(n, dtype="<u8")
    want[u : 3 * u] = count[u : 3 * u]
    want[5 * u :] = count[5 * u :]
    assert (out[:n] == want).all()
    assert (out[n:] == 99).all()  # nothing written past the flags


def test_reported_pageblocks_are_the_free_blocks_with_pg_reported_at_their_head(tmp_path):
    # PG_reported aliases PG_uptodate: KPF_UPTODATE on a free buddy's head. Pageblocks 0-1:
    # one order-10 buddy flagged at pfn 0 (both halves reported); 2: half allocated, a free
    # page flagged (a block below pageblock order: not marked); 3: an order-9 buddy flagged
    # at its head (pageblock 2 is not free, so no merge); 4: an order-9 buddy, not reported;
    # 5: allocated pages with PG_uptodate (page cache), not free
    from host_snapshot_util import FREE, LRU_ANON, LRU_FILE, snapshot

    up = 1 << S.KPF_UPTODATE
    f = np.full(6 * PB, FREE, dtype=np.uint64)
    f[0] |= up
    f[2 * PB : 2 * PB + 256] = LRU_ANON
    f[2 * PB + 256] |= up
    f[3 * PB] |= up
    f[5 * PB :] = LRU_FILE
    want = [True, True, False, True, False, False]
    assert S.reported_pageblocks_from_flags(f).tolist() == want
    snap = snapshot(f)
    assert snap.reported_blocks().tolist() == want
    snap.save(tmp_path / "s.npz")
    assert S.Snapshot.load(tmp_path / "s.npz").reported_blocks().tolist() == want
