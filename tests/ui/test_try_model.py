"""The console's "try it" (g): `aios-tui generate RUN -i` on the run's latest checkpoint, in the
console's terminal, the console suspended until the session ends."""

from __future__ import annotations

import json
import sys

import pytest
from textual.widgets import DataTable

from pilots import wait_for
from runfiles import add_checkpoint, write_run
from aios_tui.ui import runctl
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen

SIZE = (100, 30)


def with_data_summary(run, **data) -> None:
    """The run's metrics header with the data summary the engine writes."""
    lines = run.default_metrics.read_text().splitlines()
    header = json.loads(lines[0])
    header["data"] = {"path": "/data/x.jsonl", "documents": 40, "tokens": 1988, **data}
    run.default_metrics.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")


@pytest.fixture
def ran(monkeypatch):
    """The command lines the console handed its terminal to."""
    calls = []

    def run_in_terminal(app, argv):
        calls.append(argv)
        return True

    monkeypatch.setattr(runctl, "run_in_terminal", run_in_terminal)
    return calls


def offered(screen) -> bool:
    return "try_model" in {b.binding.action for b in screen.active_bindings.values() if b.enabled}


def expected(run, step, *extra):
    return [sys.executable, "-m", "aios_tui", "generate", str(run.path.resolve()), "-i",
            "--checkpoint", str(step), *extra]


async def test_g_in_the_run_view_tries_the_latest_checkpoint_of_a_live_run(make_app, runs_root, ran):
    run = write_run(runs_root, "lora-live")
    add_checkpoint(run, 100)
    add_checkpoint(run, 200)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and offered(app.screen),
                       what="the Try it key")
        await pilot.press("g")
        await wait_for(pilot, lambda: ran, what="the session")
        assert isinstance(app.screen, RunScreen)  # the console comes back where it was
    assert ran == [expected(run, 200)]


async def test_a_run_trained_on_chat_is_tried_as_a_conversation(make_app, runs_root, ran):
    chat = write_run(runs_root, "chat", state="stopped", pid=0)
    with_data_summary(chat, chat=True)
    plain = write_run(runs_root, "plain", state="stopped", pid=0)
    with_data_summary(plain, chat=False)
    for run in (chat, plain):
        add_checkpoint(run, 100)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen)
                       and app.screen.query_one(DataTable).row_count == 2, what="the runs list")
        for row in range(2):
            app.screen.query_one(DataTable).move_cursor(row=row)
            await pilot.pause()
            await pilot.press("g")
            await wait_for(pilot, lambda: len(ran) == row + 1, what="the session")
        names = [r.name for r in app.screen.runs]
    tried = dict(zip(names, ran))
    assert tried == {"chat": expected(chat, 100, "--chat"), "plain": expected(plain, 100)}


async def test_without_a_checkpoint_the_key_is_not_offered_and_says_when_the_first_comes(
        make_app, runs_root, ran):
    run = write_run(runs_root, "young", steps=40)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        assert not offered(app.screen)
        await pilot.press("g")
        app.screen.action_try_model()  # as the palette would, had the key been offered a moment ago
        await pilot.pause()
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        assert not offered(app.screen)
        notices = [n.message for n in app._notifications]
    assert ran == []
    assert notices == ["young: no checkpoint yet: the first is saved at step 100"]


async def test_where_the_console_cannot_be_suspended_it_shows_the_command(make_app, runs_root, monkeypatch):
    # Textual's headless driver cannot suspend, like a terminal where the console cannot let go.
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a session"))
    run = write_run(runs_root, "lora-done", state="finished", pid=0)
    add_checkpoint(run, 100)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and offered(app.screen))
        await pilot.press("g")
        await wait_for(pilot, lambda: app._notifications, what="the notice")
        notices = [n.message for n in app._notifications]
    assert notices == ["this console cannot hand its terminal over; in a shell run: "
                       f"aios-tui generate {run.path.resolve()} -i --checkpoint 100"]


async def test_keys_typed_while_the_session_started_do_not_act_on_the_console(make_app, runs_root, monkeypatch):
    from aios_tui.ui.screens.confirm import ConfirmScreen

    from test_typed_ahead import burst

    run = write_run(runs_root, "lora-live")
    add_checkpoint(run, 100)
    ran = []

    def run_in_terminal(app, argv):
        ran.append(argv)
        burst(app, "s")  # read before the terminal was handed over: "stop"
        return True

    monkeypatch.setattr(runctl, "run_in_terminal", run_in_terminal)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and offered(app.screen))
        await pilot.press("g")
        await wait_for(pilot, lambda: ran, what="the session")
        for _ in range(5):
            await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert not any(isinstance(s, ConfirmScreen) for s in app.screen_stack)
        await pilot.press("n")  # typed after: acts
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")
