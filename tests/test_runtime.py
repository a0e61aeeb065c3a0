"""precision 'auto': bf16 only where the device does bf16 in hardware."""
import pytest
import torch

from hseg.runtime import autocast, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def cpu_features(monkeypatch, avx512_bf16: bool, amx: bool):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                        (True, True, "bf16"), (False, False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(monkeypatch, avx512_bf16, amx, expected):
    cpu_features(monkeypatch, avx512_bf16, amx)
    assert resolve_precision("auto", CPU) == expected


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_follows_native_bf16(monkeypatch, native, expected):
    seen = {}

    def is_bf16_supported(including_emulation=True):
        seen["emulation"] = including_emulation
        return native
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert resolve_precision("auto", CUDA) == expected
    assert seen["emulation"] is False  # emulated bf16 is slower than fp32, so it does not count


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_explicit_precision_is_kept(monkeypatch, precision):
    cpu_features(monkeypatch, False, False)
    assert resolve_precision(precision, CPU) == precision


@pytest.mark.parametrize("native, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_autocast_computes_in_the_resolved_precision(monkeypatch, native, dtype):
    cpu_features(monkeypatch, native, False)
    a = torch.randn(8, 8)
    with autocast(CPU, "auto"):
        assert (a @ a).dtype == dtype
