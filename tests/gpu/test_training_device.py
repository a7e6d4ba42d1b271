"""Which GPU the VRAM budget is set against: the one a run started here would train on."""

from __future__ import annotations

import json

import pytest

import aios_tui.gpu as gpu_pkg
from aios_tui.gpu.fake import FakeGpu, FakeNvml
from aios_tui.gpu.model import DeviceSample, training_device
from aios_tui.gpu.nvml import open_nvml

GiB = 1 << 30
DEVICES = [DeviceSample(index=0, name="A", mem_total=24 * GiB), DeviceSample(index=1, name="B", mem_total=80 * GiB)]


@pytest.mark.parametrize("spec, expected", [
    (None, "A"),          # unset: the first GPU
    ("1", "B"),
    ("1,0", "B"),         # the first named is CUDA's device 0
    (" 0 ", "A"),
    ("", None),           # every GPU hidden: the run goes to the CPU
    ("-1", None),
    ("7", None),          # no such GPU: CUDA sees none either
    ("GPU-6b1c1f6e-0000", "A"),  # a UUID is not mapped; the first GPU stands in
])
def test_cuda_visible_devices_picks_the_gpu(spec, expected):
    env = {} if spec is None else {"CUDA_VISIBLE_DEVICES": spec}
    picked = training_device(DEVICES, env)
    assert (picked.name if picked else None) == expected


def test_no_gpus_no_pick():
    assert training_device([], {}) is None


def test_estimate_budgets_against_the_visible_gpu(cli, monkeypatch):
    nvml = FakeNvml([FakeGpu(name="Fake L4 24GB", mem_total=24 * GiB, mem_used=1 * GiB),
                     FakeGpu(name="Fake H100 80GB", mem_total=80 * GiB, mem_used=1 * GiB)])
    monkeypatch.setattr(gpu_pkg, "open_backend", lambda simulate=False: open_nvml(nvml))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    code, out, err = cli("estimate", "--json")
    assert code == 0, err
    assert "Fake H100 80GB (GPU 1, detected)" in json.dumps(json.loads(out))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    code, out, err = cli("estimate", "--json")
    assert code == 0 and "Fake L4 24GB (GPU 0, detected)" in out
