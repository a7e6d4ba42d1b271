"""bench/peak_breakdown.py: the live-storage tracker and its CPU smoke run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import peak_breakdown as pb  # noqa: E402


def test_the_tracker_counts_live_storages_even_when_a_freed_block_is_handed_out_again():
    tracker = pb.make_tracker("cpu")
    with tracker:
        kept = []
        for _ in range(50):
            gone = torch.ones(4096)        # freed at once: the next one may get its address
            del gone
            kept.append(torch.ones(4096))
        view = kept[0][:10]                # a view adds nothing
        tracker._sweep()
        live_now = tracker.current
    assert live_now == 50 * 4096 * 4
    assert tracker.peak >= live_now
    assert view.untyped_storage().nbytes() == 4096 * 4


def test_the_allocating_line_is_named():
    tracker = pb.make_tracker("cpu")
    with tracker:
        x = torch.zeros(1000)
    assert tracker.at_peak and x.numel() == 1000
    # created here (no project frame on the stack): named as such, not dropped
    assert set(tracker.at_peak) == {"(outside the project and its libraries)"}


def test_a_variant_names_a_case_and_its_changed_settings():
    assert pb._variant("gpt2-lora-all+plain:load_in_8bit=false,batch_size=4,optim=x") == (
        "gpt2-lora-all+plain", {"load_in_8bit": False, "batch_size": 4, "optim": "x"})


@pytest.mark.slow
def test_smoke_run_lists_what_was_alive_at_the_peak(tmp_path, capsys):
    out = tmp_path / "peak.json"
    code = pb.main(["--smoke", "--cases", "gpt2-lora", "--steps", "2", "--workdir", str(tmp_path / "w"),
                    "--json", str(out)])
    assert code == 0
    case = json.loads(out.read_text())["cases"][0]
    assert case["tracked_peak"] > 0 and case["alive_at_peak"]
    assert sum(i["bytes"] for i in case["alive_at_peak"]) <= case["tracked_peak"]
    sites = " ".join(i["site"] for i in case["alive_at_peak"])
    assert "transformers" in sites or "aios_tui" in sites
    assert "tracked peak" in capsys.readouterr().out


def test_unknown_case_is_refused(capsys):
    assert pb.main(["--smoke", "--cases", "nope"]) == 2
    assert "unknown case" in capsys.readouterr().err
