"""`aios-tui runs` and how `attach` picks a run."""

from __future__ import annotations

import json

import pytest

from aios_tui.errors import UserError
from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.summary import find_run

from runfiles import T0, add_checkpoint, write_run


@pytest.fixture
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    old = write_run(root, "old-full", steps=200, state="finished", pid=0, method="full")
    live = write_run(root, "live-lora", steps=120)
    stopped = write_run(root, "stopped-ia3", steps=30, state="stopped", pid=0, method="ia3")
    for i, r in enumerate((old, live, stopped)):  # begun last: stopped, then live, then old
        r.write_status(started_at=T0 + i)
    return root


def test_runs_table(cli, runs):
    code, out, _ = cli("runs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "STEP", "LOSS", "AGE", "SIZE", "METHOD"]
    assert [l.split()[:4] for l in lines[1:]] == [
        ["stopped-ia3", "stopped", "30/200", "4.4865"],
        ["live-lora", "running", "120/200", "1.9734"],
        ["old-full", "finished", "200/200", "1.3525"],
    ]


def test_runs_json(cli, runs):
    code, out, _ = cli("runs", "--json")
    data = json.loads(out)
    assert [r["name"] for r in data] == ["stopped-ia3", "live-lora", "old-full"]
    assert data[1]["state"] == "running" and data[1]["step"] == 120 and data[1]["age_s"] > 0


def test_runs_when_there_are_none(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "empty"))
    code, out, _ = cli("runs")
    assert code == 0 and out.startswith("no runs under")


def test_runs_stop(cli, runs):
    code, out, _ = cli("runs", "stop", "live-lora")
    assert code == 0 and (runs / "live-lora" / "STOP").exists()
    code, _, err = cli("runs", "stop", "old-full")
    assert code == 2 and "not training (state: finished)" in err
    code, _, err = cli("runs", "stop", "nope")
    assert code == 2 and err == (f"aios-tui: error: nope: no such run directory here, under {runs}, or among the "
                                 "runs started from other directories; runs under "
                                 f"{runs}: stopped-ia3, live-lora, old-full\n")


def test_runs_stop_says_a_checkpoint_is_saved_only_when_there_are_new_steps(cli, runs):
    """A run still loading its model has trained nothing: a new one saves nothing, a resume
    stays at the checkpoint it resumes from."""
    new = write_run(runs, "loading", steps=0, state="starting")
    code, out, _ = cli("runs", "stop", "loading")
    assert code == 0 and out.startswith("asked 'loading' to stop: it has trained no step yet, so no checkpoint "
                                        "is saved (follow it with")
    resuming = write_run(runs, "resuming", steps=100, state="starting")
    add_checkpoint(resuming, 100)
    code, out, _ = cli("runs", "stop", "resuming")
    assert code == 0 and out.startswith("asked 'resuming' to stop: it has trained no step since its checkpoint "
                                        "at step 100, and stays there (follow")
    add_checkpoint(RunDir(runs / "live-lora"), 100)
    code, out, _ = cli("runs", "stop", "live-lora")
    assert code == 0 and out.startswith("asked 'live-lora' to stop: it saves a checkpoint first (follow")
    assert new.stop_file.exists() and resuming.stop_file.exists()


def test_attach_picks_the_newest_live_run(runs):
    assert find_run(None).name == "live-lora"
    assert find_run("old-full").name == "old-full"
    assert find_run(str(runs / "stopped-ia3" / "metrics.jsonl")).name == "stopped-ia3"


def test_attach_with_nothing_training_opens_the_newest_run(cli, tmp_path, monkeypatch):
    root = tmp_path / "r"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    with pytest.raises(UserError, match="no runs under .* and none started from other directories"):
        find_run(None)
    write_run(root, "done", state="finished", pid=0)
    assert find_run(None).name == "done"
    code, _, err = cli("attach", "missing")
    assert code == 2 and "missing: no such run directory here" in err


def test_root_and_json_go_before_or_after_the_action(cli, runs, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", "/nonexistent")
    for argv in (("runs", "--root", str(runs), "--json", "list"), ("runs", "list", "--json", "--root", str(runs))):
        code, out, _ = cli(*argv)
        assert code == 0 and len(json.loads(out)) == 3
    code, _, _ = cli("runs", "--root", str(runs), "stop", "live-lora")
    assert code == 0 and (runs / "live-lora" / "STOP").exists()


def test_the_console_refuses_a_pipe_instead_of_drawing_into_it(cli_subprocess):
    for argv in (["console"], []):
        proc = cli_subprocess(*argv, timeout=60)
        assert proc.returncode == 2, (argv, proc.stdout[:200])
        assert "the console needs a terminal" in proc.stderr and "\x1b[" not in proc.stdout


def test_runs_with_a_root_that_does_not_exist_is_refused(cli, tmp_path):
    code, _, err = cli("runs", "--root", str(tmp_path / "nope"))
    assert code == 2 and "no such directory" in err


def test_runs_with_a_root_that_is_a_file_is_refused(cli, tmp_path):
    afile = tmp_path / "runs.txt"
    afile.write_text("x")
    for argv in (("runs", "--root", str(afile)), ("runs", "list", "--root", str(afile)),
                 ("runs", "stop", "live-lora", "--root", str(afile))):
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err == f"aios-tui: error: --root {afile}: not a directory\n", argv


def test_runs_with_aios_tui_runs_naming_a_file_is_refused(cli, tmp_path, monkeypatch):
    afile = tmp_path / "runs.txt"
    afile.write_text("x")
    monkeypatch.setenv("AIOS_TUI_RUNS", str(afile))
    for argv in (("runs",), ("runs", "--json"), ("runs", "stop", "live-lora")):
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err == f"aios-tui: error: AIOS_TUI_RUNS {afile}: not a directory\n", argv
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "not-yet"))  # no run so far: not a mistake
    assert cli("runs") == (0, f"no runs under {tmp_path / 'not-yet'}\n", "")


def test_tail_refuses_a_file_that_is_not_metrics(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    code, _, err = cli("tail", str(notes))
    assert code == 2 and "not a metrics file" in err


def test_a_moved_run_is_listed_by_its_directory(cli, tmp_path, monkeypatch):
    import json

    root = tmp_path / "moved-root"
    run = root / "now-here"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "stopped", "run_name": "was-there", "step": 3}))
    code, out, err = cli("runs", "--root", str(root))
    assert code == 0, err
    assert "now-here" in out and "was-there" not in out


def test_the_default_runs_root_is_named_whole_with_the_way_to_another(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AIOS_TUI_RUNS")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("attach")
    assert code == 2 and f"no runs under {tmp_path}/artifacts/runs and none started from other" in err
    assert cli("runs")[1].startswith(f"no runs under {tmp_path}/artifacts/runs (runs are kept under")


def test_runs_stop_refuses_json_it_would_ignore(cli, runs):
    code, out, err = cli("runs", "--json", "stop", "live-lora")
    assert code == 2 and out == ""
    assert err == ("aios-tui: error: --json prints the list of runs as JSON; `runs stop` prints no list, "
                   "so drop --json\n")
    assert not (runs / "live-lora" / "STOP").exists()
