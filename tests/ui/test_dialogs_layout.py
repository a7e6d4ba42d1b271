"""What an 80x24 terminal shows: both side panes, each dialog's own keys, whole questions,
every form tab; and the keys the help text and the README list."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.geometry import Region
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from aios_tui.commands import console
from aios_tui.ui.app import AiosApp
from aios_tui.ui.screens.checkpoints import CheckpointInfo, CheckpointPicker
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.prompt import PromptScreen
from aios_tui.ui.screens.quit import QuitScreen
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen
from aios_tui.ui.screens.text_view import TextScreen
from aios_tui.ui.widgets.config_form import TABS, tab_labels
from aios_tui.ui.widgets.gpu_pane import GpuPane
from aios_tui.ui.widgets.vram_pane import VramPane

from console_fixtures import NOW, no_gpu
from pilots import screen_lines, set_field, text_in, wait_for
from runfiles import write_run

SMALL = (80, 24)
GiB = 1 << 30


def footer_keys(app) -> dict[str, str]:
    """The footer's keys as displayed, each with its description."""
    return {k.key_display: k.description for k in app.screen.query_one(Footer).query(FooterKey)}


def long_estimate(cfg, model_config=None, gpu_memory_bytes=None):
    """A budget that does not fit, with every suggestion: the tallest the VRAM pane gets."""
    data = {"peak_allocated_bytes": 120 * GiB, "device_used_bytes": 139 * GiB,
            "breakdown": {"base_weights": 30 * GiB, "optimizer_states": 60 * GiB, "gradients": 30 * GiB,
                          "framework_overhead": 1 << 26},
            "fits": False,
            "suggestions": [{"change": "train a LoRA adapter + load the weights in bf16",
                             "peak_allocated_bytes": 18 * GiB, "fits": True},
                            {"change": "train a LoRA adapter (r=16 on q_proj,v_proj) instead of every weight",
                             "peak_allocated_bytes": 35 * GiB, "fits": True},
                            {"change": "load the weights in bf16", "peak_allocated_bytes": 60 * GiB, "fits": True},
                            {"change": "use 8-bit AdamW", "peak_allocated_bytes": 60 * GiB, "fits": True}]}
    return SimpleNamespace(to_dict=lambda: data)


# -- the side column -------------------------------------------------------------
async def test_a_short_terminal_shows_the_gpu_pane_on_a_key(make_app):
    app = make_app(gpu=no_gpu(), estimator=long_estimate)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: "would make it fit" in str(app.screen.query_one("#vram-body").render()))
        await pilot.pause()
        vram = app.screen.query_one(VramPane)
        assert app.screen.region.contains_region(vram.region)
        assert "use 8-bit AdamW" in text_in(app, vram.region)
        assert footer_keys(app)["^y"] == "GPU"
        await pilot.press("ctrl+y")
        await pilot.pause()
        gpu = app.screen.query_one(GpuPane)
        assert gpu.region.height and app.screen.region.contains_region(gpu.region)
        shown = text_in(app, gpu.region)
        assert "no GPU: NVIDIA driver not found" in shown and "training runs on the CPU" in shown
        assert footer_keys(app)["^y"] == "VRAM"
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert "use 8-bit AdamW" in text_in(app, vram.region)


async def test_a_tall_terminal_shows_both_panes_and_no_switch(make_app):
    app = make_app(gpu=no_gpu(), estimator=long_estimate)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_for(pilot, lambda: "would make it fit" in str(app.screen.query_one("#vram-body").render()))
        await pilot.pause()
        for pane in (app.screen.query_one(VramPane), app.screen.query_one(GpuPane)):
            assert pane.region.height and app.screen.region.contains_region(pane.region)
        assert "^y" not in footer_keys(app)
        await pilot.resize_terminal(*SMALL)
        await wait_for(pilot, lambda: "^y" in footer_keys(app), what="the switch on a short terminal")


async def test_the_switch_is_in_the_palette_and_only_on_the_form(make_app, runs_root):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        assert "Show the GPU pane in place of the VRAM budget" in {c.title for c in app.get_system_commands(app.screen)}
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause()
        assert "^y" not in footer_keys(app)


async def test_every_form_key_fits_an_80_column_footer(make_app, runs_root):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.current_run = runs_root / "some-run"  # ctrl+b shows once there is a run to go back to
        app.refresh_bindings()
        await pilot.pause(0.2)
        footer = screen_lines(app)[-1]
        for key, desc in footer_keys(app).items():
            assert f"{key} {desc}" in footer or (key == "^p" and "^p" in footer), (key, footer)


# -- dialogs -----------------------------------------------------------------------
INFOS = [CheckpointInfo(6, NOW, 2.5, 3.1), CheckpointInfo(4, NOW, 2.7, None)]
DIALOGS = [
    (lambda: PromptScreen("Save as a user preset"), {"⏎": "Accept", "esc": "Cancel"}),
    (lambda: ConfirmScreen("Overwrite user preset 'x'?"), {"y": "Yes", "n": "No"}),
    (lambda: TextScreen("Equivalent command", "aios-tui train"), {"esc": "Close", "c": "Copy"}),
    (lambda: CheckpointPicker("lora-a", INFOS), {"⏎": "Export adapter", "m": "Export merged", "esc": "Cancel"}),
    (lambda: QuitScreen(["lora-a"]), {"l": "Leave training", "s": "Stop and quit", "c": "Cancel"}),
    (lambda: QuitScreen([], ["lora-a"]), {"q": "Quit", "c": "Cancel"}),
]


@pytest.mark.parametrize("make_dialog, keys", DIALOGS, ids=[d[1][next(iter(d[1]))] for d in DIALOGS])
async def test_a_dialog_shows_its_own_keys_and_offers_them_in_the_palette(make_app, make_dialog, keys):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        dialog = make_dialog()
        app.push_screen(dialog)
        await wait_for(pilot, lambda: app.screen is dialog and dialog.query(FooterKey))
        await pilot.pause()
        assert footer_keys(app) == keys  # and none of the form's
        footer = screen_lines(app)[-1]
        assert all(f"{k} {d}" in footer for k, d in keys.items()), footer
        titles = {c.title for c in app.get_system_commands(dialog)}
        offered = [a.binding for a in dialog.active_bindings.values()
                   if a.node is dialog and a.enabled and a.binding.show  # not its list's cursor keys
                   and a.binding.action in [b.action for b in type(dialog).BINDINGS]]
        assert offered and all(b.tooltip in titles for b in offered)


async def test_a_full_fine_tune_exports_its_model_and_has_nothing_to_merge(make_app):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        answers = []
        dialog = CheckpointPicker("full-a", INFOS, adapter=False)
        app.push_screen(dialog, answers.append)
        await wait_for(pilot, lambda: app.screen is dialog and dialog.query(FooterKey))
        await pilot.pause()
        assert footer_keys(app) == {"⏎": "Export model", "esc": "Cancel"}
        await pilot.press("m")  # nothing to merge: m does nothing
        await pilot.pause()
        assert app.screen is dialog and answers == []
        await pilot.press("enter")
        await wait_for(pilot, lambda: answers, what="the answer")
        assert answers == [(INFOS[0].step, False)]


async def test_enter_in_the_picker_exports_the_highlighted_adapter(make_app):
    app = make_app()
    answers = []
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(CheckpointPicker("lora-a", INFOS), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker))
        await pilot.press("down", "enter")
        await pilot.pause()
        app.push_screen(CheckpointPicker("lora-a", []), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker) and app.screen.query(FooterKey))
        assert footer_keys(app) == {"esc": "Cancel"}  # nothing to export
        await pilot.press("enter", "m")
        await pilot.pause()
        assert isinstance(app.screen, CheckpointPicker)
        await pilot.press("escape")
        await pilot.pause()
    assert answers == [(4, False), None]


async def test_enter_in_a_prompt_answers_it(make_app):
    app = make_app()
    answers = []
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(PromptScreen("How many?"), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("3", "0", "0", "enter")
        await pilot.pause()
        app.push_screen(PromptScreen("How many?"), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("escape")
        await pilot.pause()
    assert answers == ["300", None]


async def test_quitting_from_the_quit_dialog_does_not_ask_again(make_app, runs_root):
    run = write_run(runs_root, "keep-going")
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert sum(isinstance(s, QuitScreen) for s in app.screen_stack) == 1
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)


@pytest.mark.parametrize("size", [SMALL, (130, 40)])
async def test_the_resume_question_is_shown_whole(make_app, runs_root, size):
    run = write_run(runs_root, "lora-20250101-120000", state="finished", steps=200, pid=0)
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        from aios_tui.metrics.rundir import RunDir
        app.resume_run(RunDir(run.path))
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.pause()
        title = app.screen.query_one(".dialog-title")
        assert text_in(app, title.region) == \
            "lora-20250101-120000 has finished. Train to how many steps in total?"


async def test_a_confirm_question_wraps(make_app):
    question = "Overwrite user preset 'a-preset-name-long-enough-to-need-a-second-line-here'?"
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmScreen(question, "/home/someone/.config/aios-tui/presets/x.toml"))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause()
        assert text_in(app, app.screen.query_one(".dialog-title").region) == question


# -- the form's tabs -----------------------------------------------------------------
async def test_every_tab_is_readable_at_80_columns_with_problems_in_each(make_app):
    app = make_app()
    async with app.run_test(size=SMALL) as pilot:
        # one problem in every tab
        for name, value in (("eval_fraction", "2"), ("lora_r", "0"), ("steps", "0"),
                            ("load_in_8bit", True), ("load_in_4bit", True), ("hidden_size", "500")):
            app.screen.query_one("#form-tabs").active = f"tab-{next(k for k, _, s in TABS if name in _fields(s))}"
            await set_field(pilot, name, value)
        await pilot.pause()
        tabs = app.screen.query_one("#form-tabs")
        labels = [str(tabs.get_tab(f"tab-{key}").label) for key, _, _ in TABS]
        assert all("!" in label for label in labels), labels
        row = app.screen.query_one("#form-tabs Tabs").region
        shown = text_in(app, Region(row.x, row.y, row.width, 1))
        assert shown.split() == labels


def test_tab_labels_shorten_only_as_far_as_the_row_needs():
    assert tab_labels({"peft": 2}, 120)["peft"] == "PEFT !2"
    assert tab_labels({"peft": 2}, 120)["model"] == "Model & data"
    narrow = tab_labels({"peft": 2}, 42)
    assert narrow["model"] == "Model" and narrow["peft"] == "PEFT !2" and narrow["memory"] == "Memory"
    tight = tab_labels({key: 3 for key, _, _ in TABS}, 42)
    assert tight["memory"] == "Mem!3" and sum(len(v) + 2 for v in tight.values()) - 1 <= 42
    tightest = tab_labels({key: 12 for key, _, _ in TABS}, 42)
    assert tightest["memory"] == "Mem!" and sum(len(v) + 2 for v in tightest.values()) - 1 <= 42


def _fields(sections) -> set[str]:
    from aios_tui.config import field_index
    return {n for n, (s, _) in field_index().items() if s in sections}


# -- the keys the help text and the README list ---------------------------------------
def _keys(*classes) -> set[str]:
    out = set()
    for cls in classes:
        for b in cls.BINDINGS:
            if getattr(b, "show", True):
                out.update("esc" if k == "escape" else k for k in b.key.split(","))
    return out


SCREEN_KEYS = _keys(ConfigureScreen, RunScreen, RunsScreen, AiosApp) | {"ctrl+p"}


def test_the_console_help_lists_every_key():
    parser = argparse.ArgumentParser()
    console.register(parser.add_subparsers())
    epilog = parser._subparsers._group_actions[0].choices["console"].epilog
    missing = {k for k in SCREEN_KEYS if not re.search(rf"(?<![\w+]){re.escape(k)}(?![\w+])", epilog)}
    assert not missing, missing


def test_the_readme_lists_every_key():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## The console", 1)[1].split("\n## ", 1)[0]
    missing = {k for k in SCREEN_KEYS if f"`{k}`" not in section}
    assert not missing, missing


async def test_switching_panes_from_the_size_picker_leaves_the_keys_with_the_form(make_app):
    from textual.widgets import Input

    app = make_app(gpu=no_gpu(), estimator=long_estimate)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#gpu-size").display)
        app.screen.query_one("#gpu-size").focus()
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert isinstance(app.focused, Input) and app.focused.id == "f-model"
        await pilot.press("end", "x")
        assert app.focused.value == "tinyx"
