import numpy as np
import pytest

from migsim.copiers import CpuCopier, DmaCopier, MtCopier, make_copier

N = np.array([1, 32, 224, 262144])
PAGES = np.array([1, 32, 224, 262144])


def _bytes(pages):
    return pages.astype(float) * 4096


def test_cpu_copier_never_waits(quiet_platform, rng):
    c = CpuCopier().copy_batches(N, _bytes(PAGES), quiet_platform, rng)
    assert np.all(c.wait_s == 0)
    np.testing.assert_allclose(c.cpu_s, c.wall_s)
    # fixed cost per folio plus bytes at the copy bandwidth, from the platform's own numbers
    cp = quiet_platform.copy
    expect = N * cp.cpu_copy_fixed_us * 1e-6 + _bytes(PAGES) / (cp.cpu_copy_gbps * 1e9)
    np.testing.assert_allclose(c.wall_s, expect)


@pytest.mark.parametrize("size_pages", [1, 4, 16, 64, 256, 512])
def test_more_channels_never_cost_more_cpu_and_never_slower(quiet_platform, rng, size_pages):
    n = np.array([4096])
    b = n * size_pages * 4096.0
    prev = None
    for ch in range(1, 17):
        c = DmaCopier(channels=ch).copy_batches(n, b, quiet_platform, rng)
        if prev is not None:
            assert c.cpu_s[0] <= prev.cpu_s[0]
            assert c.wait_s[0] <= prev.wait_s[0] + 1e-12
        prev = c


def test_two_channels_share_one_engine(quiet_platform, rng):
    # 2M folios are bandwidth bound: two channels on one engine barely beat one
    n = np.array([512])
    b = n * 2.0 * 2**20
    d1, d2, d4 = (
        DmaCopier(channels=k).engine_seconds(n, b, quiet_platform)[0][0] for k in (1, 2, 4)
    )
    assert d1 / d2 < 1.2
    assert d2 / d4 == pytest.approx(2.0, rel=0.05)


def test_small_batches_below_threshold_use_the_cpu(quiet_platform, rng):
    n = np.array([32, 224])
    b = _bytes(n)
    hybrid = DmaCopier(channels=4, min_batch_bytes=64 * 4096).copy_batches(
        n, b, quiet_platform, rng
    )
    cpu = CpuCopier().copy_batches(n, b, quiet_platform, rng)
    dma = DmaCopier(channels=4).copy_batches(n, b, quiet_platform, rng)
    assert hybrid.wall_s[0] == cpu.wall_s[0] and hybrid.offloaded[0] == 0
    assert hybrid.wall_s[1] == dma.wall_s[1] and hybrid.offloaded[1] == 224
    # only an offloaded batch sleeps, and only its sleep has an idle-state exit: the wake-up
    # latency less the interrupt itself
    exit_s = (quiet_platform.dma.irq_wakeup_us - quiet_platform.sched.completion_irq_us) * 1e-6
    assert exit_s > 0
    assert list(hybrid.wake_s) == [0.0, pytest.approx(exit_s)]
    assert hybrid.wait_s[0] == 0.0 and hybrid.wait_s[1] > hybrid.wake_s[1]
    assert not cpu.wake_s.any()


def test_fault_injection_counts(quiet_platform):
    rng = np.random.default_rng(3)
    n = np.full(100, 1000)
    c = DmaCopier(channels=2, fail_rate=0.1).copy_batches(n, _bytes(n), quiet_platform, rng)
    assert np.all(c.offloaded + c.failed == n)
    assert 0.08 < c.failed.sum() / n.sum() < 0.12


def test_mt_copier_uses_other_cpus(quiet_platform, rng):
    n = np.array([262144])
    c1 = MtCopier(threads=1).copy_batches(n, _bytes(n), quiet_platform, rng)
    c8 = MtCopier(threads=8).copy_batches(n, _bytes(n), quiet_platform, rng)
    assert c8.wall_s[0] < c1.wall_s[0]
    assert c8.other_cpu_s[0] >= c1.other_cpu_s[0] * 0.99  # the same bytes are copied


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"channels": 0}, "channels"),
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"min_batch_bytes": -1}, "min_batch_bytes"),
    ],
)
def test_dma_copier_rejects_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        DmaCopier(**kwargs)


def test_too_many_channels_for_platform(quiet_platform, rng):
    with pytest.raises(ValueError, match="channels: the platform has 16"):
        DmaCopier(channels=17).copy_batches(np.array([1]), np.array([4096.0]), quiet_platform, rng)


def test_make_copier_modes():
    assert make_copier("baseline").name == "cpu"
    assert make_copier("dma", channels=3).channels == 3
    assert make_copier("mt", threads=2).threads == 2
    with pytest.raises(ValueError, match="mode"):
        make_copier("gpu")
