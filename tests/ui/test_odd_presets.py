"""Presets and files whose names or values the console must show as written, not act on."""

from __future__ import annotations

from textual.widgets import Input, Select

from aios_tui.config import RunConfig, find_preset, save_config
from aios_tui.config.presets import user_dir
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.text_view import TextScreen

from pilots import all_rows, retype, set_field, wait_for

SIZE = (80, 24)


async def test_a_preset_named_like_markup_is_listed_and_picked_as_written(make_app):
    user_dir().mkdir(parents=True)
    (user_dir() / "odd.toml").write_text('name = "[/] odd [link=x"\n[peft]\nuse_peft = true\nlora_r = 4\n')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        picker = app.screen.query_one("#preset", Select)
        picker.value = "odd"
        await wait_for(pilot, lambda: app.screen.form.result.config == find_preset("odd").config(),
                       what="the preset")
        assert "[/] odd [link=x (user)" in str(picker.query_one("#label").render())
        assert isinstance(app.screen, ConfigureScreen) and app.return_code is None


async def test_a_file_named_like_markup_loads_over_edits_and_shows_in_the_diff(make_app, tmp_path):
    path = tmp_path / "[b]odd[i.toml"  # read as markup: bold "odd", then an unclosed tag
    cfg = RunConfig()
    cfg.train.steps = 77
    save_config(cfg, path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        await retype(pilot, "steps", "train", "7")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query("#prompt-input"), what="the prompt")
        app.screen.query_one("#prompt-input", Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "[b]odd[i.toml" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen)
                       and app.screen.form.result.config == cfg, what="the file")
        await set_field(pilot, "steps", 5)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), what="the diff")
        assert f"Changes from {path}" in str(app.screen.query_one(".dialog-title").render())


async def test_zero_attention_heads_typed_in_the_form_is_a_problem_not_a_crash(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        await retype(pilot, "num_heads", "hrm", "0")
        await pilot.pause(0.2)
        result = app.screen.form.result
        assert result.config is None
        assert "hrm.num_heads: 0 is out of range; valid: 1 to 256" in result.problems
        assert app.return_code is None


async def test_many_unusable_presets_are_one_notice(make_app):
    user_dir().mkdir(parents=True)
    for i in range(8):
        (user_dir() / f"broken{i}.toml").write_text("lora_r = [1]\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app._notifications, what="the notice")
        await pilot.pause(0.2)
        notices = [n for n in app._notifications if n.title == "presets skipped"]
        assert len(notices) == 1 and len(app._notifications) == 1
        assert "broken0.toml" in notices[0].message and "+3 more problems" in notices[0].message
