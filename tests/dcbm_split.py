"""dcbm v4's split of a batch, written out from its code for the tests' expected values:
folios_copy_dma gives channel i of `channels` n*(i+1)/channels - n*i/channels folios, and
each channel's mapped sg table holds ceil(folios / per_seg) segments (descriptors)."""


def segments(n: int, channels: int, per_seg: int) -> int:
    """Descriptors of a batch of `n` folios on min(channels, n) channels, `per_seg` folios
    to a mapped segment."""
    ch = min(channels, n)
    return sum(-(-(n * (i + 1) // ch - n * i // ch) // per_seg) for i in range(ch))
