"""`aios-tui compare`: runs side by side, read from their directories alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aios_tui.config import RunConfig
from runfiles import T0, header, step_record, write_run


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def sweep_run(root: Path, name: str, losses: list[float], *, evals: dict[int, float] | None = None,
              rates: list[float] | None = None, lr: float = 2e-4, lora_r: int = 16,
              state: str = "finished", pid: int = 0, total: int | None = None,
              metrics: Path | None = None) -> Path:
    """A run whose step ``i + 1`` logged ``losses[i]`` (and ``rates[i]`` tokens/s), eval losses
    at ``evals``' steps, and a config with ``lr`` and ``lora_r``; into ``metrics`` when given
    (a shared --log-file), else its own metrics.jsonl."""
    total = total or len(losses)
    run = write_run(root, name, steps=0, total=total, state=state, pid=pid)
    head = header("lora")
    head["config"]["train"].update(lr=lr, steps=total)
    head["config"]["peft"]["lora_r"] = lora_r
    head["run_dir"] = str(run.path.resolve())
    lines = [head, {"event": "started", "step": 0, "total_steps": total, "pid": pid,
                    "run_dir": str(run.path.resolve()), "time": T0}]
    for i, loss in enumerate(losses):
        rec = step_record(i + 1, total, eval_every=0)
        rec["loss"] = loss
        if rates:
            rec["tokens_per_s"] = rates[i]
        if evals and i + 1 in evals:
            rec["eval_loss"] = evals[i + 1]
        lines.append(rec)
    if state == "finished":
        lines.append({"event": "finished", "step": len(losses), "elapsed_s": len(losses) * 0.1})
    target = metrics or run.default_metrics
    with open(target, "a" if metrics else "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in lines)
    status = json.loads(run.status_file.read_text())
    status.update(step=len(losses), metrics=str(target.resolve()))
    run.status_file.write_text(json.dumps(status))
    return run.path


@pytest.fixture
def sweep(tmp_path):
    """Two runs: A's loss ends falling (its last 5 of 100 steps average 1.4), B's is flat at 2.0;
    B reaches the lower eval loss. A differs in lr and lora_r."""
    root = tmp_path / "runs"
    a = sweep_run(root, "sweep-20250101-lr1e-3-r8", [3.0] * 95 + [1.0, 1.2, 1.4, 1.6, 1.8],
                  evals={50: 2.5, 100: 2.7}, rates=[float(r) for r in range(1, 101)], lr=1e-3, lora_r=8)
    b = sweep_run(root, "sweep-20250101-lr1e-4-r16", [2.0] * 100, evals={50: 2.2, 100: 2.1},
                  rates=[1000.0] * 99 + [1.0], lr=1e-4)
    return a, b


def _row(out: str, label: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith(label + " "))
    return [c for c in line[len(label):].split("  ") if c.strip()]


def test_the_table_sets_the_runs_figures_side_by_side(cli, sweep):
    code, out, err = cli("compare", *map(str, sweep))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["…lr1e-3-r8", "…lr1e-4-r16"]  # the dates they share: cut
    assert [c.strip() for c in _row(out, "state")] == ["finished", "finished"]
    assert [c.strip() for c in _row(out, "steps")] == ["100/100", "100/100"]
    assert [c.strip() for c in _row(out, "final loss")] == ["1.4000", "2.0000"]  # the mean, not 1.8
    assert [c.strip() for c in _row(out, "best eval")] == ["2.5000 @50", "2.1000 @100 *"]
    assert [c.strip() for c in _row(out, "last eval")] == ["2.7000 @100", "2.1000 @100"]
    assert [c.strip() for c in _row(out, "tokens/s")] == ["50", "1.0K"]  # medians: 50.5 and 1000
    assert "last 5% of steps" in out
    assert max(map(len, out.splitlines())) <= 80


def test_the_settings_that_differ_are_listed_and_the_rest_counted(cli, sweep):
    code, out, _ = cli("compare", *map(str, sweep))
    assert code == 0
    lines = out.splitlines()
    assert "  lora_r: 8 | 16" in lines
    assert any(ln.split() == ["lr:", "0.001", "|", "0.0001"] for ln in lines)
    fields = sum(len(section) for section in RunConfig().to_dict().values())
    # every field but the two that differ, and the run's name and directory (its identity)
    assert f"{fields - 4} settings identical" in lines


def test_json_gives_each_runs_figures_and_differing_settings(cli, sweep):
    code, out, _ = cli("compare", *map(str, sweep), "--json")
    assert code == 0
    a, b = json.loads(out)
    assert a["name"] == "sweep-20250101-lr1e-3-r8" and a["state"] == "finished"
    assert a["final_loss"] == pytest.approx(1.4) and a["final_loss_lines"] == 5
    assert (a["best_eval_loss"], a["best_eval_step"], a["best_eval_of_all"]) == (2.5, 50, False)
    assert (b["best_eval_loss"], b["best_eval_step"], b["best_eval_of_all"]) == (2.1, 100, True)
    assert a["tokens_per_s_median"] == 50.5 and b["tokens_per_s_median"] == 1000
    assert a["settings"] == {"lora_r": 8, "lr": 0.001} and b["settings"] == {"lora_r": 16, "lr": 0.0001}
    assert a["peak_memory_bytes"] == 900 << 20 and a["peak_memory_kind"] == "rss"
    assert '"peak_memory_bytes": 943718400,' in out  # a whole number of bytes, not 943718400.0
    assert a["wall_s"] == pytest.approx(10.0) and a["trainable_pct"] == 5.81


def test_the_chart_overlays_each_runs_losses_with_a_legend(cli, sweep, tmp_path):
    no_eval = sweep_run(tmp_path / "runs", "flat", [2.5] * 40)
    code, out, _ = cli("compare", *map(str, sweep), str(no_eval), "--chart")
    assert code == 0
    lines = out.splitlines()
    assert _row(out, "best eval")[-1].strip() == "-"   # the run that never evaluated
    train = lines.index("train loss")
    legend = lines[train + 15]
    assert legend.split() == ["•", "…lr1e-3-r8", "o", "…lr1e-4-r16", "+", "flat"]
    plot = "".join(lines[train + 1:train + 13])
    assert {"•", "o", "+"} <= set(plot)
    assert lines[train + 14].split() == ["1", "100"]
    evals = lines.index("eval loss")
    assert lines[evals + 11].split() == ["•", "…lr1e-3-r8", "o", "…lr1e-4-r16"]  # no eval: not drawn


def test_a_shared_log_file_gives_each_run_its_own_session(cli, tmp_path):
    root = tmp_path / "runs"
    shared = tmp_path / "shared.jsonl"
    a = sweep_run(root, "a", [4.0] * 20, metrics=shared, lr=1e-3)
    b = sweep_run(root, "b", [1.0] * 10, evals={10: 0.9}, metrics=shared)
    code, out, _ = cli("compare", "a", "b", "--json", "--root", str(root))
    assert code == 0
    fa, fb = json.loads(out)
    assert Path(fa["path"]).resolve() == a.resolve() and Path(fb["path"]).resolve() == b.resolve()
    assert (fa["step"], fa["final_loss"], fa["best_eval_loss"]) == (20, 4.0, None)
    assert (fb["step"], fb["final_loss"], fb["best_eval_loss"]) == (10, 1.0, 0.9)
    assert fa["settings"] == {"lr": 0.001, "steps": 20} and fb["settings"] == {"lr": 0.0002, "steps": 10}


def test_live_killed_and_resumed_runs_show_their_figures_so_far(cli, tmp_path):
    root = tmp_path / "runs"
    live = sweep_run(root, "live", [3.0] * 30, state="running", pid=os.getpid(), total=200)
    killed = sweep_run(root, "killed", [2.0] * 60, state="running", pid=_gone_pid(), total=200)
    # killed at 60, resumed from its step-40 checkpoint: steps 41.. were trained again
    with open(killed / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"event": "resumed", "step": 40, "total_steps": 200, "pid": os.getpid(),
                             "checkpoint": str(killed / "checkpoints" / "step-000040")}) + "\n")
        for s in range(41, 51):
            fh.write(json.dumps({**step_record(s, eval_every=0), "loss": 1.0}) + "\n")
    status = json.loads((killed / "status.json").read_text())
    (killed / "status.json").write_text(json.dumps({**status, "pid": os.getpid(), "step": 50}))
    code, out, _ = cli("compare", str(live), str(killed))
    assert code == 0
    assert [c.strip() for c in _row(out, "state")] == ["running", "running"]
    assert [c.strip() for c in _row(out, "steps")] == ["30/200", "50/200"]
    assert [c.strip() for c in _row(out, "final loss")] == ["3.0000", "1.0000"]
    assert [c.strip() for c in _row(out, "best eval")] == ["-", "-"]


def test_a_killed_run_reads_as_failed(cli, tmp_path):
    root = tmp_path / "runs"
    dead = sweep_run(root, "dead", [2.0] * 12, state="running", pid=_gone_pid(), total=50)
    done = sweep_run(root, "done", [1.5] * 50)
    code, out, _ = cli("compare", str(dead), str(done))
    assert code == 0
    assert [c.strip() for c in _row(out, "state")] == ["failed", "finished"]
    assert [c.strip() for c in _row(out, "steps")] == ["12/50", "50/50"]


def test_refusals_are_one_line_and_exit_2(cli, sweep, tmp_path):
    a, b = map(str, sweep)
    not_run = tmp_path / "plain"
    not_run.mkdir()
    broken = sweep_run(tmp_path / "runs", "broken", [1.0])
    (broken / "metrics.jsonl").write_bytes(b"\x00\x01 not json\n")
    dir_metrics = sweep_run(tmp_path / "runs", "dirmetrics", [1.0])
    (dir_metrics / "metrics.jsonl").unlink()
    (dir_metrics / "metrics.jsonl").mkdir()
    cases = [
        ((a,), "give two or more runs"),
        ((a, a), "the same run"),
        ((a, "nonesuch"), "nonesuch: no such run directory"),
        ((a, str(not_run)), "not a run directory"),
        ((a, str(broken)), "is not a metrics file"),
        ((a, str(dir_metrics)), "cannot be read"),
        ((a, b, "--chart", "--json"), "give one of them"),
        ((a, b, "--root", str(tmp_path / "nowhere")), "--root"),
    ]
    for args, says in cases:
        code, out, err = cli("compare", *args)
        assert code == 2, args
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("aios-tui: error: "), (args, err)
        assert says in err, (args, err)


def test_long_names_keep_the_part_that_tells_them_apart():
    from aios_tui.commands.compare import short_names

    assert short_names(["a", "b"]) == ["a", "b"]
    assert short_names(["lora-20250101-120000", "lora-20250101-130500"]) == [
        "lora-20250101-120000", "lora-20250101-130500"]  # they fit
    assert short_names(["lora-20250101-120000-lr1e-4", "lora-20250101-120000-lr3e-4"]) == ["…lr1e-4", "…lr3e-4"]
    shortened = short_names(["x" * 30 + "-a", "y" * 30 + "-b"])
    assert all(len(s) <= 20 for s in shortened) and shortened[0].endswith("-a") and shortened[1].endswith("-b")


def test_compare_does_not_import_torch(sweep):
    code = ("import sys\nfrom aios_tui.cli import main\n"
            f"rc = main(['compare', {str(sweep[0])!r}, {str(sweep[1])!r}, '--chart'])\n"
            "assert rc == 0\n"
            "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_two_real_runs_with_different_learning_rates(cli, tmp_path):
    common = ("--preset", "efficient", "--steps", "3", "--eval-every", "3", "--progress", "none")
    for name, lr in (("slow", "1e-4"), ("fast", "3e-3")):
        code, _, err = cli("train", *common, "--lr", lr, "--run-name", name)
        assert code == 0, err
    code, out, err = cli("compare", "slow", "fast", "--json")
    assert code == 0, err
    slow, fast = json.loads(out)
    assert (slow["state"], slow["step"], slow["total_steps"]) == ("finished", 3, 3)
    assert slow["settings"] == {"lr": 0.0001} and fast["settings"] == {"lr": 0.003}
    assert slow["best_eval_step"] == 3 and fast["best_eval_step"] == 3
    assert [r["best_eval_of_all"] for r in (slow, fast)].count(True) >= 1
    assert all(r["tokens_per_s_median"] > 0 and r["peak_memory_bytes"] > 0 for r in (slow, fast))
    code, out, _ = cli("compare", "slow", "fast")
    assert code == 0 and "  lr:" in out and "0.0001 | 0.003" in out
    assert "changed on resume" not in out

    # settings changed on a resume are told beside the start's, with the step they took effect at
    code, _, err = cli("train", "--resume", "fast", "--steps", "4", "--lr", "1e-3", "--progress", "none")
    assert code == 0, err
    code, out, _ = cli("compare", "slow", "fast")
    assert code == 0 and "0.0001 | 0.001" in out  # the settings fast last ran with
    assert "  fast at step 3: steps: 3 -> 4, lr: 0.003 -> 0.001" in out.splitlines()
    code, out, _ = cli("compare", "slow", "fast", "--json")
    slow, fast = json.loads(out)
    assert slow["resume_changes"] == []
    assert fast["resume_changes"] == [{"step": 3, "changes": ["steps: 3 -> 4", "lr: 0.003 -> 0.001"]}]
    assert fast["step"] == 4



def test_a_resumed_run_shows_the_settings_its_resume_changed(cli, tmp_path):
    common = ("--preset", "efficient", "--steps", "2", "--eval-every", "0", "--progress", "none")
    for name in ("kept", "resumed"):
        code, _, err = cli("train", *common, "--run-name", name)
        assert code == 0, err
    code, _, err = cli("train", "--resume", "resumed", "--steps", "3", "--lr", "1e-3", "--progress", "none")
    assert code == 0, err
    code, out, err = cli("compare", "kept", "resumed", "--json")
    assert code == 0, err
    kept, resumed = json.loads(out)
    assert (resumed["step"], resumed["total_steps"]) == (3, 3)
    assert kept["settings"] == {"steps": 2, "lr": 0.0} and resumed["settings"] == {"steps": 3, "lr": 0.001}
    code, out, _ = cli("compare", "kept", "resumed")
    assert code == 0 and "auto (0.0002) | 0.001" in out  # lr 0: the efficient preset's LoRA default

def test_a_moved_run_keeps_its_figures(cli, sweep, tmp_path):
    # archived, or fetched home from the training box: its status and metrics name where it was
    a, b = sweep
    moved = tmp_path / "archive" / b.name
    moved.parent.mkdir()
    b.rename(moved)
    code, out, _ = cli("compare", str(a), str(moved), "--json")
    assert code == 0
    _, fb = json.loads(out)
    assert (fb["step"], fb["final_loss"], fb["best_eval_loss"]) == (100, 2.0, 2.1)


def test_one_name_in_three_places_is_numbered_in_each():
    from aios_tui.commands.compare import short_names

    assert short_names(["lora-x", "lora-x", "lora-x"]) == ["lora-x#1", "lora-x#2", "lora-x#3"]
