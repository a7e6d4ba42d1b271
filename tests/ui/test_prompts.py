"""A prompt given a wrong answer stays open with the answer as typed and says what is wrong in the
dialog itself; it closes on a right answer, or on esc with nothing done."""

from __future__ import annotations

from textual.widgets import Input

from aios_tui.config import find_preset, load_config, save_config
from aios_tui.config.presets import user_dir
from aios_tui.metrics.rundir import RunDir
from aios_tui.ui import runctl
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.prompt import PromptScreen

from pilots import text_in, wait_for
from runfiles import write_run

SMALL = (80, 24)


async def open_prompt(pilot, key: str) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfigureScreen), what="the form")
    await pilot.press(key)
    await shown(pilot)


async def shown(pilot) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptScreen)
                   and pilot.app.screen.query_one("#prompt-input").has_focus, what="the prompt")


async def answer(pilot, text: str) -> None:
    """Type over the prompt's answer and press enter."""
    pilot.app.screen.query_one("#prompt-input", Input).value = text
    await pilot.press("enter")
    await pilot.pause()


def assert_kept(app, typed: str, problem: str) -> None:
    """The prompt is still open, the answer as typed and focused, the problem shown in it whole."""
    screen = app.screen
    assert isinstance(screen, PromptScreen)
    field = screen.query_one("#prompt-input", Input)
    assert field.value == typed and screen.focused is field
    shown = screen.query_one("#prompt-problem")
    assert shown.display and shown.region.bottom <= screen.query_one(".dialog").region.bottom <= SMALL[1]
    assert problem in text_in(app, shown.region)


def user_presets() -> list[str]:
    return sorted(p.name for p in user_dir().glob("*")) if user_dir().is_dir() else []


async def test_a_bad_preset_name_keeps_the_prompt_until_a_good_one(make_app):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_prompt(pilot, "ctrl+s")
        await pilot.press(*"a/b", "enter")
        await pilot.pause()
        assert_kept(app, "a/b", "looks like a file path")
        await answer(pilot, "efficient")
        assert_kept(app, "efficient", "'efficient' is a shipped preset; choose another name")
        await pilot.press("end", "backspace")  # editing puts the problem away: it was about the old text
        await pilot.pause()
        assert not app.screen.query_one("#prompt-problem").display
        await pilot.press("enter")  # "efficien"
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="the form")
        assert user_presets() == ["efficien.toml"]


async def test_esc_after_a_bad_answer_writes_nothing(make_app):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_prompt(pilot, "ctrl+s")
        await answer(pilot, "x.toml")
        assert_kept(app, "x.toml", "looks like a file path")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="the form")
        assert user_presets() == []


async def test_an_empty_answer_asks_again_instead_of_closing(make_app):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_prompt(pilot, "ctrl+s")
        await pilot.press("space", "enter")
        await pilot.pause()
        assert_kept(app, " ", "type an answer, or esc to cancel")


async def test_a_missing_or_broken_toml_keeps_the_prompt_until_one_loads(make_app, tmp_path):
    cfg = find_preset("budget").config()
    cfg.train.steps = 77
    good = tmp_path / "mine.toml"
    save_config(cfg, good)
    bad = tmp_path / "bad.toml"
    bad.write_text("[peft]\nlora_rr = 3\nlora_r = -1\n[train]\nsteps = -5\nlr = 'abc'\n")
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await open_prompt(pilot, "ctrl+o")
        await answer(pilot, str(tmp_path / "nope.toml"))
        assert_kept(app, str(tmp_path / "nope.toml"), "no such file")
        await answer(pilot, str(bad))
        assert_kept(app, str(bad), "unknown key 'lora_rr' in [peft]; did you mean 'lora_r'?")
        assert "+2 more problems" in text_in(app, app.screen.query_one("#prompt-problem").region)
        assert str(bad) not in text_in(app, app.screen.query_one("#prompt-problem").region)  # it is above
        assert app.screen_stack[0].form.result.config.train.steps == 200  # the form as it was
        (tmp_path / "dir.toml").mkdir()
        await answer(pilot, str(tmp_path / "dir.toml"))
        assert_kept(app, str(tmp_path / "dir.toml"), "directory")
        await answer(pilot, str(good))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="the form")
        assert app.screen.form.result.config == cfg == load_config(good)


async def test_the_steps_to_resume_to_are_asked_until_they_are_more(make_app, runs_root, monkeypatch):
    calls = []
    monkeypatch.setattr(runctl, "resume_run", lambda run, steps: calls.append((run.name, steps)) or 1)
    run = write_run(runs_root, "done", state="finished", steps=200, pid=0)
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.resume_run(RunDir(run.path))
        await shown(pilot)
        await pilot.press(*"3OO", "enter")
        await pilot.pause()
        assert_kept(app, "3OO", "'3OO' is not a whole number of steps")
        await answer(pilot, "150")
        assert_kept(app, "150", "give more than the 200 steps it already ran")
        await answer(pilot, "200")
        assert_kept(app, "200", "more than the 200 steps")
        await answer(pilot, "2000000000")  # the engine would refuse it once the run showed resuming
        assert_kept(app, "2000000000", "train.steps: 2000000000 is out of range; valid: 1 to 1000000000")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PromptScreen) and calls == []
        app.resume_run(RunDir(run.path))
        await shown(pilot)
        await answer(pilot, " 300 ")
        await wait_for(pilot, lambda: calls, what="the resume")
        assert calls == [("done", 300)]
