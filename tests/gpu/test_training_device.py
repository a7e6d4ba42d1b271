"""Which GPU the VRAM budget is set against: the one a run started here would train on."""

from __future__ import annotations

import json

import pytest

import aios_tui.gpu as gpu_pkg
from aios_tui.gpu.fake import FakeGpu, FakeNvml
from aios_tui.gpu.model import DeviceSample, training_device, training_memory
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


MIG_BOX = [DeviceSample(index=0, name="A", mem_total=24 * GiB, uuid="GPU-aaaa-1111", mig=False),
           DeviceSample(index=1, name="B", mem_total=80 * GiB, uuid="GPU-bbbb-2222", mig=True)]


@pytest.mark.parametrize("spec, expected, memory", [
    ("GPU-bbbb-2222", "B", None),      # that GPU, but split: a run gets one slice of its 80 GiB
    ("GPU-aaaa", "A", 24 * GiB),       # a unique start of a UUID is enough for CUDA
    ("GPU-cccc", None, None),          # no GPU here has it: CUDA sees none either
    ("GPU-", None, None),              # ambiguous: CUDA refuses it
    ("MIG-3f2e4a1b-0000-1111", "B", None),  # a MIG instance: a slice of the GPU in MIG mode
    ("0", "A", 24 * GiB),
    (None, "A", 24 * GiB),
])
def test_uuids_and_mig_instances_in_cuda_visible_devices(spec, expected, memory):
    env = {} if spec is None else {"CUDA_VISIBLE_DEVICES": spec}
    picked = training_device(MIG_BOX, env)
    assert (picked.name if picked else None) == expected
    assert training_memory(picked) == memory


def test_uuid_and_mig_mode_are_read_once_and_carried_in_json(cli, monkeypatch):
    nvml = FakeNvml([FakeGpu(uuid="GPU-1234"), FakeGpu(mig_mode=1)])
    monkeypatch.setattr(gpu_pkg, "open_backend", lambda simulate=False: open_nvml(nvml))
    code, out, _ = cli("gpu", "--once", "--json")
    devices = json.loads(out)["devices"]
    assert code == 0 and [(d["uuid"], d["mig"]) for d in devices] == [("GPU-1234", None), ("GPU-fake-1", True)]
    assert [d["error"] for d in devices] == [None, None]  # no MIG support is not an error
    b = open_nvml(nvml)
    b.read(), b.read()
    assert nvml.calls["nvmlDeviceGetMigMode"] == 2 + 2  # once per GPU per backend


def test_estimate_does_not_budget_a_mig_slice_against_the_whole_gpu(cli, monkeypatch):
    nvml = FakeNvml([FakeGpu(name="Fake A100 80GB", mem_total=80 * GiB, mig_mode=1)])
    monkeypatch.setattr(gpu_pkg, "open_backend", lambda simulate=False: open_nvml(nvml))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-3f2e4a1b-0000-1111")
    code, out, err = cli("estimate")
    assert code == 0, err
    assert "80.0 GiB" not in out
    assert ("GPU: Fake A100 80GB (GPU 0, detected, in MIG mode): a run gets one MIG instance's memory; "
            "give its size with --gpu-memory; fits: unknown") in out


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
