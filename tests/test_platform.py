import pytest
import yaml

from migsim.cost.platform import SPEC, PlatformError, load_platform, save_platform


def test_every_parameter_has_unit_range_and_meaning(platform):
    for sec, params in SPEC.items():
        for key, p in params.items():
            assert p.unit and p.meaning and p.lo <= p.hi, f"{sec}.{key}"
            v = platform.as_dict()[sec][key]
            assert p.lo <= v <= p.hi


def test_save_and_load_round_trip(platform, tmp_path):
    path = tmp_path / "p.yaml"
    save_platform(platform, path)
    again = load_platform(path)
    assert again.as_dict() == platform.as_dict()
    assert again.digest() == platform.digest()


def _write(tmp_path, doc):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _doc(platform):
    return {"name": "x", "parameters": platform.as_dict()}


def test_out_of_range_names_key_and_range(platform, tmp_path):
    doc = _doc(platform)
    doc["parameters"]["dma"]["engine_gbps"] = -1
    with pytest.raises(
        PlatformError, match=r"dma\.engine_gbps.*outside the allowed range \[0\.1, 400\]"
    ):
        load_platform(_write(tmp_path, doc))


def test_missing_key_and_unknown_key(platform, tmp_path):
    doc = _doc(platform)
    del doc["parameters"]["cpu"]["pte_us"]
    with pytest.raises(PlatformError, match=r"missing key cpu\.pte_us"):
        load_platform(_write(tmp_path, doc))
    doc = _doc(platform)
    doc["parameters"]["cpu"]["bogus_us"] = 1.0
    with pytest.raises(PlatformError, match="bogus_us"):
        load_platform(_write(tmp_path, doc))


def test_wrong_type_and_integer(platform, tmp_path):
    doc = _doc(platform)
    doc["parameters"]["copy"]["cpu_copy_gbps"] = "fast"
    with pytest.raises(PlatformError, match=r"copy\.cpu_copy_gbps must be a number"):
        load_platform(_write(tmp_path, doc))
    doc = _doc(platform)
    doc["parameters"]["dma"]["chans_per_engine_count"] = 1.5
    with pytest.raises(PlatformError, match="whole number"):
        load_platform(_write(tmp_path, doc))


def test_missing_file(tmp_path):
    with pytest.raises(PlatformError, match="no such file"):
        load_platform(tmp_path / "nope.yaml")


def test_wrong_unit_is_rejected(platform, tmp_path):
    path = tmp_path / "p.yaml"
    save_platform(platform, path)
    doc = yaml.safe_load(path.read_text())
    doc["parameters"]["dma"]["irq_wakeup_us"]["unit"] = "ms"
    with pytest.raises(PlatformError, match=r"dma\.irq_wakeup_us must be given in us"):
        load_platform(_write(tmp_path, doc))
