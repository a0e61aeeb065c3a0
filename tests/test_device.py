"""Device and precision: 'auto' is bf16 only where the device does bf16 in hardware; fp32 is fp32 on a GPU
too (no TF32); host vs device copies are decided by device type."""
import contextlib

import pytest
import torch

from hseg.device import autocast, resolve_precision

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


@pytest.mark.parametrize("source, target, copied", [
    ("cuda:0", "cuda", False),   # a cache already on the GPU: no pin_memory() (a RuntimeError on a CUDA tensor)
    ("cuda:0", "cuda:0", False),
    ("cuda:1", "cuda:0", False),
    ("cpu", "cuda", True),
    ("cpu", "cuda:0", True),
    ("cpu", "cpu", False),
    ("cuda:0", "cpu", False),
])
def test_host_to_device_is_decided_by_device_type_not_equality(source, target, copied):
    from hseg.device import host_to_device
    assert host_to_device(torch.device(source), torch.device(target)) is copied


def test_pick_device_gives_the_gpu_its_index(monkeypatch):
    from hseg.device import pick_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for requested in ("auto", "cuda"):
        device = pick_device(requested)
        assert device == torch.device("cuda:0") and device.index == 0  # the way CUDA tensors name their device
    assert pick_device("cpu") == CPU


def test_upload_and_to_device_leave_host_tensors_on_the_cpu_alone():
    from hseg.device import to_device, upload
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert upload(x, CPU) is x
    assert to_device(x, CPU).dtype == torch.float32 and not to_device(x, CPU).is_pinned()


def test_fp32_on_cuda_turns_cudnn_tf32_off_and_mixed_precision_back_on(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # restored after the test
    autocast(CPU, "fp32")
    assert torch.backends.cudnn.allow_tf32 is True  # the CPU path leaves the GPU setting alone
    autocast(CUDA, "fp32")
    assert torch.backends.cudnn.allow_tf32 is False
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        autocast(CUDA, "bf16")  # torch warns that CUDA autocast is disabled on a machine without a GPU
    assert torch.backends.cudnn.allow_tf32 is True
