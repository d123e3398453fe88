import pytest

from migsim.units import folio_order, format_size, parse_size, ptes_per_folio


@pytest.mark.parametrize(
    "text,nbytes",
    [
        ("4K", 4096),
        ("2M", 2 << 20),
        ("1G", 1 << 30),
        ("4096", 4096),
        ("1.5G", 3 << 29),
        ("64KiB", 65536),
    ],
)
def test_parse_size(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("bad", ["", "4X", "-4K", "0", "1.5", "K"])
def test_parse_size_rejects_and_names_argument(bad):
    with pytest.raises(ValueError, match="--folio-size"):
        parse_size(bad, name="--folio-size")


def test_format_size_round_trips():
    for n in (4096, 16384, 65536, 262144, 1 << 20, 2 << 20, 1 << 30):
        assert parse_size(format_size(n)) == n


def test_folio_order_and_mapping():
    assert folio_order(4096) == 0
    assert folio_order(2 << 20) == 9
    with pytest.raises(ValueError, match="power-of-two"):
        folio_order(12288)
    # mTHP folios are PTE-mapped, one PTE per base page; a 2M THP is one PMD
    assert ptes_per_folio(4096) == 1
    assert ptes_per_folio(1 << 20) == 256
    assert ptes_per_folio(2 << 20) == 1
