"""The GPU and VRAM panes' text, including the states a GPU-less box shows."""

from __future__ import annotations

from aios_tui.gpu import DeviceSample, Snapshot
from aios_tui.ui.gpu_source import StaticGpu
from aios_tui.ui.widgets.gpu_pane import GpuPane, render_gpu
from aios_tui.ui.widgets.vram_pane import render_estimate

from console_fixtures import T0, h200

GiB = 1 << 30


def test_unsupported_fields_read_na():
    dev = DeviceSample(index=0, name="Old GPU", mem_used=None, mem_total=None)
    text = str(render_gpu(Snapshot(True, "", False, T0, [dev]), [], 40))
    assert "N/A/N/A W" in text and "temp N/A" in text and "util  N/A" in text


def test_a_long_gpu_name_stays_on_one_line_and_unknown_memory_is_not_an_empty_bar():
    dev = DeviceSample(index=3, name="NVIDIA " + "X" * 200, mem_used=GiB, mem_total=None)
    lines = str(render_gpu(Snapshot(True, "", False, T0, [dev]), [], 34)).splitlines()
    assert lines[0] == "GPU3 NVIDIA " + "X" * 21 + "…" and len(lines[0]) == 34
    assert lines[1].startswith("mem  ????") and "░" not in lines[1] and lines[1].endswith("1.0 GiB/N/A")


def test_no_gpu_says_why():
    text = str(render_gpu(Snapshot(False, "NVIDIA driver not found", False, T0, []), [], 40))
    assert text.startswith("no GPU: NVIDIA driver not found")


def test_own_processes_are_marked():
    text = str(render_gpu(Snapshot(True, "", False, T0, [h200()]), [], 40))
    lines = text.splitlines()
    assert any(l.startswith("*   4242 python") for l in lines)
    assert any(l.startswith("     777 jupyter") for l in lines)


async def test_a_simulated_gpu_is_labelled(make_app):
    snap = Snapshot(True, "simulated", True, T0, [h200()])
    app = make_app(gpu=StaticGpu(snap))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.query_one(GpuPane).border_title == "GPU · SIMULATED"


def test_fit_reads_in_words():
    est = {"peak_allocated_bytes": 10 << 30, "device_used_bytes": 11 << 30,
           "breakdown": {"base_weights": 6 << 30, "optimizer_states": 4 << 30}, "fits": False,
           "suggestions": [{"change": "turn on gradient checkpointing", "peak_allocated_bytes": 7 << 30,
                            "fits": True},
                           {"change": "use 8-bit AdamW", "peak_allocated_bytes": 9 << 30, "fits": False}]}
    text = str(render_estimate(est, None, 8 << 30, 36))
    assert "DOES NOT FIT  needs 11.0 GiB of 8.0 GiB" in text
    assert "would make it fit:\n- turn on gradient checkpointing: 7.0 GiB" in text
    assert "8-bit AdamW" not in text  # not a fix on its own
    none_fit = [{**sg, "fits": False} for sg in est["suggestions"]]
    text = str(render_estimate({**est, "suggestions": none_fit}, None, 8 << 30, 36))
    assert "would make it fit" not in text and "nothing here makes it fit; each lowers the peak:" in text
    assert "weights" in text and "optimizer" in text
    text = str(render_estimate({**est, "fits": True, "suggestions": []}, None, 24 << 30, 36))
    assert "FITS  11.0 GiB of 24.0 GiB (46%)" in text
    assert "fit: unknown" in str(render_estimate({**est, "fits": None}, None, None, 36))


async def test_the_budget_is_set_against_the_gpu_cuda_visible_devices_names(make_app, monkeypatch):
    from aios_tui.ui.widgets.vram_pane import VramPane

    small = DeviceSample(index=0, name="NVIDIA L4", mem_total=24 << 30, mem_used=0)
    big = DeviceSample(index=1, name="NVIDIA H200", mem_total=140 << 30, mem_used=0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    app = make_app(gpu=StaticGpu(Snapshot(True, "", False, T0, [small, big])))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        pane = app.screen.query_one(VramPane)
        assert pane.detected == ("NVIDIA H200", 140 << 30) and pane.budget_bytes == 140 << 30


async def test_a_gpu_in_mig_mode_is_not_budgeted_as_a_whole_card(make_app, monkeypatch):
    from aios_tui.ui.widgets.vram_pane import VramPane

    # A run on a MIG box gets one instance (e.g. 10 GiB), never the card's 80 GiB.
    split = DeviceSample(index=0, name="NVIDIA A100 80GB", mem_total=80 << 30, mem_used=0, mig=True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-3f2e4a1b-0000-1111")
    app = make_app(gpu=StaticGpu(Snapshot(True, "", False, T0, [split])))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.screen.query_one(VramPane)
        assert pane.detected is None and pane.budget_bytes is None
        shown = pane.query_one("#gpu-size SelectCurrent #label").render()
        assert str(shown) == "NVIDIA A100 80GB in MIG mode: pick a size"
