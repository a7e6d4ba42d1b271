"""`aios-tui runs delete`, and the sizes `runs` shows: on a real (tiny, CPU) run and hand-written ones."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from aios_tui.errors import UserError
from aios_tui.metrics import run_delete
from aios_tui.metrics.disk_usage import dir_bytes
from aios_tui.metrics.fmt import human_bytes
from aios_tui.metrics.run_lock import RunLock

from runfiles import T0, add_checkpoint, write_run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 4-step run of the tiny built-in model, with its checkpoint (trained once)."""
    from aios_tui.cli import main

    where = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(where / "state"))
        mp.setenv("OMP_NUM_THREADS", "1")
        code = main(["train", "--preset", "efficient", "--steps", "4", "--run-dir", str(where / "done"),
                     "--progress", "none"])
    assert code == 0
    return where / "done"


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    root.mkdir()
    return root


@pytest.fixture
def finished(trained, root):
    return shutil.copytree(trained, root / "lora-done", symlinks=True)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def typed(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(text))


def test_deleting_a_finished_run_frees_its_directory(cli, root, finished):
    size = dir_bytes(finished)
    assert size > 1 << 20  # the model's base copy and a checkpoint
    code, out, err = cli("runs", "delete", "lora-done", "--yes")
    assert (code, err) == (0, "")
    assert not finished.exists() and list(root.iterdir()) == []
    assert out == f"deleted lora-done: {human_bytes(size)} freed\n"
    code, out, _ = cli("runs")
    assert out.startswith("no runs under")


def test_a_terminal_asks_once_naming_size_and_checkpoints(cli, root, finished, monkeypatch, capsys):
    other = write_run(root, "full-old", state="finished", pid=0, method="full")
    add_checkpoint(other, 100)
    add_checkpoint(other, 200)
    for answer in ("\n", "n\n", "maybe\n", ""):  # "" : stdin closed
        typed(monkeypatch, answer)
        code, out, err = cli("runs", "delete", "lora-done", "full-old")
        assert code == 1 and out == "nothing deleted\n"
        assert finished.is_dir() and other.path.is_dir()
    assert err == (f"Delete 2 runs (lora-done: {human_bytes(dir_bytes(finished))}, 1 checkpoint; "
                   f"full-old: {human_bytes(dir_bytes(other.path))}, 2 checkpoints)? [y/N] ")
    typed(monkeypatch, "YES\n")
    code, out, err = cli("runs", "delete", "lora-done", str(other.path))
    assert code == 0 and not finished.exists() and not other.path.exists()
    assert [l.split(":")[0] for l in out.splitlines()] == ["deleted lora-done", "deleted full-old"]


def test_without_a_terminal_it_needs_yes(cli, root, finished):
    code, out, err = cli("runs", "delete", "lora-done")
    assert code == 2 and out == ""
    assert err == "aios-tui: error: not asking without a terminal: pass --yes to delete lora-done\n"
    assert finished.is_dir()


def test_a_live_run_is_refused_and_with_it_every_other(cli, root, finished):
    write_run(root, "lora-live")  # running, with this test's pid
    code, out, err = cli("runs", "delete", "--yes", "lora-done", "lora-live")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"aios-tui: error: run 'lora-live' is still running (pid {__import__('os').getpid()}); "
        "stop it first (`aios-tui runs stop lora-live`) or follow it with `aios-tui tail lora-live --follow`",
        "aios-tui: error: nothing deleted"]
    assert finished.is_dir() and (root / "lora-live").is_dir()


def test_resume_and_delete_refuse_a_live_run_with_one_message(cli, root):
    import subprocess

    other = subprocess.Popen(["sleep", "60"])  # not this process: a resume's own launcher is let by
    try:
        live = write_run(root, "lora-live", pid=other.pid)
        _, _, deleting = cli("runs", "delete", "--yes", "lora-live")
        _, _, resuming = cli("train", "--resume", "lora-live")
    finally:
        other.kill()
        other.wait()
    why = (f"run 'lora-live' is still running (pid {other.pid}); stop it first (`aios-tui runs stop lora-live`) "
           "or follow it with `aios-tui tail lora-live --follow`")
    assert deleting == f"aios-tui: error: {why}\n"
    assert resuming == f"aios-tui: error: --resume {live.path}: {why}\n"


def test_a_run_elsewhere_is_named_by_its_directory_in_the_refusal(cli, root, tmp_path):
    live = write_run(tmp_path / "elsewhere", "lora-live")  # not under the runs root: its name finds nothing
    _, _, err = cli("runs", "delete", "--yes", str(live.path))
    assert f"stop it first (`aios-tui runs stop {live.path}`)" in err


def test_a_run_a_resume_holds_is_refused(cli, root, finished):
    lock = RunLock.take(finished)  # as a `train --resume` of it holds it
    try:
        code, _, err = cli("runs", "delete", "--yes", "lora-done")
        assert err == ("aios-tui: error: run 'lora-done' is being trained by another process right now (a "
                       "resume); stop it first (`aios-tui runs stop lora-done`) or follow it with "
                       "`aios-tui tail lora-done --follow`\n")
        assert code == 2
        assert finished.is_dir()
    finally:
        lock.release()
    code, _, _ = cli("runs", "delete", "--yes", "lora-done")
    assert code == 0 and not finished.exists()


def test_the_check_is_made_again_after_the_question(root, finished):
    """A run resumed while the question showed is not deleted."""
    doomed = run_delete.plan(["lora-done"])
    lock = RunLock.take(finished)
    try:
        with pytest.raises(Exception, match=r"being trained by another process right now \(a resume\); stop it first .*; nothing deleted"):
            run_delete.delete(doomed)
    finally:
        lock.release()
    assert finished.is_dir() and list(root.iterdir()) == [finished]


def test_a_directory_that_is_not_a_run_is_never_removed(cli, tmp_path, root):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.toml").write_text("[tool]\n")  # someone's config, no status of ours
    code, _, err = cli("runs", "delete", "--yes", str(project))
    assert code == 2 and err == (f"aios-tui: error: {project}: not a run directory (no status.json "
                                 "written by aios-tui); nothing deleted\n")
    assert (project / "config.toml").exists()
    code, _, err = cli("runs", "delete", "--yes", str(project / "config.toml"))
    assert code == 2 and "not a run directory (give the run's directory" in err
    code, _, err = cli("runs", "delete", "--yes", "nope")
    assert code == 2 and "nope: no such run directory" in err


def test_a_run_outside_the_root_is_deleted_by_its_path(cli, tmp_path, trained, root):
    elsewhere = shutil.copytree(trained, tmp_path / "data" / "mine")
    code, out, _ = cli("runs", "delete", "--yes", str(elsewhere))
    assert code == 0 and out.startswith("deleted mine: ") and not elsewhere.exists()
    assert list((tmp_path / "data").iterdir()) == []


def test_an_interrupted_delete_leaves_nothing_listed_and_the_next_cleans_it(cli, root, finished, monkeypatch):
    write_run(root, "other", state="stopped", pid=0)
    real = shutil.rmtree

    def cut_short(path, *a, **kw):
        (path / "status.json").unlink()  # some of it went
        raise KeyboardInterrupt

    monkeypatch.setattr(run_delete.shutil, "rmtree", cut_short)
    code, _, _ = cli("runs", "delete", "--yes", "lora-done")
    assert code == 130
    left = [p.name for p in root.iterdir()]
    assert sorted(left)[0].startswith(".deleting-lora-done-") and "other" in left
    code, out, _ = cli("runs")
    assert [l.split()[0] for l in out.splitlines()[1:]] == ["other"]
    code, out, _ = cli("runs", "--json")
    assert [r["name"] for r in json.loads(out)] == ["other"]
    monkeypatch.setattr(run_delete.shutil, "rmtree", real)
    code, _, _ = cli("runs", "delete", "--yes", "other")
    assert code == 0 and list(root.iterdir()) == []


def test_runs_shows_each_runs_size(cli, root, finished):
    small = write_run(root, "small", state="stopped", pid=0)
    small.write_status(started_at=T0)
    code, out, _ = cli("runs")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "STEP", "LOSS", "AGE", "SIZE", "METHOD"]
    at = lines[0].index("SIZE")
    sizes = {l.split()[0]: " ".join(l[at:].split()[:2]) for l in lines[1:]}
    # as `runs delete` (and every other command) names a size
    assert sizes == {"lora-done": human_bytes(dir_bytes(finished)), "small": human_bytes(dir_bytes(small.path))}
    assert sizes["lora-done"].endswith(" MiB") and sizes["small"].endswith(" KiB")
    assert all(len(l) <= 80 for l in lines)
    code, out, _ = cli("runs", "--json")
    got = {r["name"]: r["bytes"] for r in json.loads(out)}
    assert got == {"lora-done": dir_bytes(finished), "small": dir_bytes(small.path)}


def test_a_wide_row_of_runs_still_fits_80_columns(cli, root, monkeypatch):
    import time

    # an HRM run's generated name, a long run's step, the widest size below 1000 TiB
    run = write_run(root, "hrm-lora-20250101-120000", steps=1, total=20000, state="stopped", pid=0,
                    method="hrm-lora")
    run.write_status(step=12000, total_steps=20000, started_at=time.time() - 40 * 3600)
    monkeypatch.setattr("aios_tui.metrics.summary.dir_bytes", lambda path: int(999.9 * (1 << 30)))
    code, out, _ = cli("runs")
    row = out.splitlines()[1]
    assert "12000/20000" in row and "999.9 GiB" in row and row.endswith("hrm-lora")
    assert len(row) <= 80, row


def test_an_unreadable_part_counts_as_what_could_be_read(tmp_path, monkeypatch):
    import os

    run = write_run(tmp_path, "r", state="finished", pid=0)
    ckpt = add_checkpoint(run, 100)
    (ckpt / "weights").write_bytes(b"x" * (1 << 20))
    whole = dir_bytes(run.path)
    real = os.scandir

    def not_ours(path):  # as a checkpoint another user wrote, mode 700, lists for us
        if os.fspath(path) == str(ckpt):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr("aios_tui.metrics.disk_usage.os.scandir", not_ours)
    part = dir_bytes(run.path)
    assert 0 < part <= whole - (1 << 20)  # all but what is inside the checkpoint


def test_a_link_to_a_run_is_refused_and_neither_is_removed(cli, tmp_path, root, trained):
    elsewhere = shutil.copytree(trained, tmp_path / "archive" / "old", symlinks=True)
    (root / "old-link").symlink_to(elsewhere, target_is_directory=True)
    code, out, err = cli("runs", "delete", "old-link", "--yes")
    assert (code, out) == (2, "")
    assert err == (f"aios-tui: error: old-link: is a link to {elsewhere}; delete that run by its own path, "
                   f"or remove the link alone (rm {root / 'old-link'})\n")
    assert elsewhere.is_dir() and (root / "old-link").is_symlink()


@pytest.mark.parametrize("when", ["as it is looked up", "as its status is read", "after its question",
                                  "before its lock", "between opening its lock and taking it"])
def test_of_two_deletes_of_one_run_the_one_that_lost_says_it_is_gone(cli, root, monkeypatch, when):
    """Two `runs delete` of one run: whichever step of the loser the winner's delete lands
    before, the loser says the run is gone, not that it is trained or half deleted."""
    run = write_run(root, "twice", state="finished", pid=0)
    add_checkpoint(run, 100)
    real = RunLock.try_take
    other, raced = [], []

    def the_other_delete() -> None:
        raced.append(True)  # once: the other delete takes the lock through this same hook
        other.extend(run_delete.delete(run_delete.plan(["twice"])))

    def racing(run_dir, fh=None):
        if run_dir == run.path and not raced:
            if when == "before its lock":
                the_other_delete()
            elif when == "between opening its lock and taking it":
                fh = open(run_dir / ".engine.lock", "ab")
                the_other_delete()
        return real(run_dir, fh)

    gone = "run 'twice' is gone already (another delete took it, or it was moved, since it was looked up)"
    if when in ("as it is looked up", "as its status is read"):
        step = "resolve_run" if when == "as it is looked up" else "delete_blocker"
        real_step = getattr(run_delete, step)

        def then_the_other(*a, **kw):  # the other delete lands just after the look-up, or before the read
            found = real_step(*a, **kw) if step == "resolve_run" else None
            if not raced:
                the_other_delete()
            return found if step == "resolve_run" else real_step(*a, **kw)

        monkeypatch.setattr(run_delete, step, then_the_other)
        with pytest.raises(UserError) as caught:
            run_delete.plan(["twice"])
        assert caught.value.problems == [gone]
    else:
        doomed = run_delete.plan(["twice"])
        if when == "after its question":
            the_other_delete()
        monkeypatch.setattr(RunLock, "try_take", staticmethod(racing))
        with pytest.raises(UserError) as caught:
            run_delete.delete(doomed)
        assert caught.value.problems == [f"{gone}; nothing deleted"]
    assert [d.left for d in other] == [None] and not run.path.exists()
    assert list(root.iterdir()) == []


def test_a_delete_leaves_alone_a_leftover_another_delete_is_still_removing(cli, root):
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = root / f".deleting-big-p{other.pid}-0123abcd"  # another process's delete, mid-rmtree
        (busy / "checkpoints").mkdir(parents=True)
        write_run(root, "done", state="stopped", pid=0)
        code, out, _ = cli("runs", "delete", "--yes", "done")
        assert code == 0 and out.startswith("deleted done: ")
        assert busy.is_dir()
    finally:
        other.kill()
        other.wait()
    write_run(root, "again", state="stopped", pid=0)
    code, _, _ = cli("runs", "delete", "--yes", "again")
    assert code == 0 and list(root.iterdir()) == []  # its remover gone, the leftover is swept
