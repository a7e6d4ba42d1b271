"""The configuration screen driven by keys: form, validation, presets, TOML, diff, command line."""

from __future__ import annotations

import shlex

import pytest

from textual.widgets import Input, Select, TextArea

from aios_tui.cli import build_parser
from aios_tui.config import config_from_args, find_preset, load_config, save_config
from aios_tui.config.presets import user_dir
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.prompt import PromptScreen
from aios_tui.ui.screens.text_view import TextScreen
from aios_tui.ui.widgets.command_preview import CommandPreview
from aios_tui.ui.widgets.config_form import ConfigForm
from aios_tui.ui.widgets.field_row import FieldRow
from aios_tui.ui.widgets.form_status import FormStatus
from aios_tui.ui.widgets.vram_pane import VramPane

from pilots import all_rows, focus_field, retype, set_field, wait_for

SIZE = (120, 40)


def static_text(widget) -> str:
    return str(widget.render())


def pane_text(app) -> str:
    return str(app.screen.query_one("#vram-body").render())


async def test_every_config_field_has_an_editor(make_app):
    from aios_tui.config import field_index
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        names = {row.field_name for row in app.screen.query(FieldRow)}
        assert names == set(field_index())
        assert isinstance(app.screen, ConfigureScreen)


async def test_editing_a_field_recomputes_the_vram_pane(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        before = pane_text(app)
        assert "activations" in before
        await retype(pilot, "batch_size", "train", "64")
        await pilot.pause(0.3)  # the pane is debounced
        after = pane_text(app)
        assert after != before
        assert app.screen.form.result.config.train.batch_size == 64
        # the fixed estimator's activations are batch x seq x 1 MiB / 8: 64 x 128 / 8 MiB = 1.0 GiB
        assert "1.0 GiB" in after


async def test_picking_a_gpu_size_decides_the_fit(make_app):
    from console_fixtures import no_gpu
    app = make_app(gpu=no_gpu())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert "fit: unknown" in pane_text(app)
        select = app.screen.query_one("#gpu-size", Select)
        select.value = str(12288 << 20)  # RTX 3060 12 GB
        await pilot.pause(0.2)
        assert "FITS" in pane_text(app)
        await retype(pilot, "batch_size", "train", "4096")  # 64 GiB of activations
        await pilot.pause(0.3)
        text = pane_text(app)
        assert "DOES NOT FIT" in text
        assert "gradient_checkpointing" in text  # the calculator's suggestion is listed


async def test_bad_values_are_shown_under_their_fields_and_block_a_run(make_app, runs_root):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await retype(pilot, "lora_r", "peft", "0")
        await set_field(pilot, "hidden_size", "500")
        await focus_field(pilot, "load_in_8bit", "memory")
        await pilot.press("space")
        await set_field(pilot, "load_in_4bit", True)
        form = app.screen.query_one(ConfigForm)
        assert form.result.config is None
        lora_row = form.row("lora_r")
        assert lora_row.has_class("-invalid")
        assert "lora_r: 0 is out of range" in static_text(lora_row.query_one(".field-error"))
        assert "not divisible by num_heads=8" in static_text(form.row("hidden_size").query_one(".field-error"))
        # a problem naming two fields shows under both; one naming use_peft shows there
        for name in ("load_in_8bit", "load_in_4bit"):
            assert "exclude each other" in static_text(form.row(name).query_one(".field-error"))
        assert "cannot be trained in full" in static_text(form.row("use_peft").query_one(".field-error"))
        status = static_text(app.screen.query_one(FormStatus))
        assert "4 problems" in status
        tabs = app.screen.query_one("#form-tabs")
        assert "!2" in str(tabs.get_tab("tab-peft").label)
        assert "!1" in str(tabs.get_tab("tab-hrm").label)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not any(runs_root.iterdir())  # nothing started
        # fixing the values clears the messages
        for name, value in (("lora_r", "8"), ("hidden_size", "512"), ("load_in_4bit", False),
                            ("load_in_8bit", False)):
            await set_field(pilot, name, value)
        assert form.result.config is not None
        assert not lora_row.has_class("-invalid")


async def test_preset_picker_loads_the_preset_and_marks_changes(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        app.screen.query_one("#preset", Select).value = "efficient"
        await pilot.pause()
        cfg = app.screen.form.result.config
        assert cfg == find_preset("efficient").config()
        assert "same as preset efficient" in static_text(app.screen.query_one(FormStatus))
        await retype(pilot, "lora_r", "peft", "8")
        form = app.screen.form
        assert form.row("lora_r").has_class("-changed")
        assert not form.row("lora_alpha").has_class("-changed")
        assert "1 change from preset efficient" in static_text(app.screen.query_one(FormStatus))
        preview = app.screen.query_one(CommandPreview).command
        assert preview == "aios-tui train --preset efficient --lora-r 8"


async def test_command_line_rebuilds_the_form_config_through_the_real_cli(make_app, tmp_path):
    app = make_app(preset="balanced", base=find_preset("balanced").config())
    async with app.run_test(size=SIZE) as pilot:
        for name, value in (("lora_r", "12"), ("dataset_file", "my data.txt"), ("lr", "0.0003"),
                            ("gradient_checkpointing", True)):
            await set_field(pilot, name, value)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, TextScreen)
        command = app.screen.query_one(TextArea).text
        form_cfg = app.screen_stack[0].form.result.config
    argv = shlex.split(command)
    assert argv[:2] == ["aios-tui", "train"]
    assert "'my data.txt'" in command
    # `train` may not be registered while testing the console alone; `config` takes the same flags.
    ns = build_parser().parse_args(["config", *argv[2:]])
    assert config_from_args(ns) == form_cfg


def test_a_form_that_changes_hrm_settings_gets_the_brain_command():
    """HRM settings act only in `train-actv1`; on `train` they would do nothing (and say so)."""
    import dataclasses

    from aios_tui.ui.cmdline import command_line

    base = find_preset("efficient").config()
    cfg = dataclasses.replace(base, hrm=dataclasses.replace(base.hrm, halt_max_steps=1))
    argv = shlex.split(command_line(cfg, base, preset="efficient"))
    assert argv == ["aios-tui", "train-actv1", "--preset", "efficient", "--halt-max-steps", "1"]
    assert config_from_args(build_parser().parse_args(["config", *argv[2:]])) == cfg
    assert shlex.split(command_line(base, base, preset="efficient"))[:2] == ["aios-tui", "train"]


async def test_diff_view_lists_changes_from_the_preset(make_app):
    app = make_app(preset="efficient", config=find_preset("efficient").config())
    async with app.run_test(size=SIZE) as pilot:
        await set_field(pilot, "lora_r", "8")
        await set_field(pilot, "steps", "50")
        await pilot.press("ctrl+t")
        await pilot.pause()
        text = app.screen.query_one(TextArea).text
        assert "peft.lora_r" in text and "16 -> 8" in text
        assert "train.steps" in text and "200 -> 50" in text
        assert "lora_alpha" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfigureScreen)


async def test_save_preset_writes_toml_and_confirms_overwrite(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await set_field(pilot, "use_peft", True)
        await retype(pilot, "lora_r", "peft", "4")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"My Small")
        await pilot.press("enter")
        await pilot.pause()
        path = user_dir() / "my-small.toml"
        assert path.is_file()
        saved = load_config(path)
        assert saved.peft.use_peft and saved.peft.lora_r == 4
        assert find_preset("my-small").config() == saved
        # it is now the picked preset, and the form has no changes from it
        assert app.screen.query_one("#preset", Select).value == "my-small"
        assert "same as preset my-small" in static_text(app.screen.query_one(FormStatus))

        # saving again under the same name asks first; "n" keeps the old file
        await set_field(pilot, "lora_r", "6")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"my small", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert load_config(path).peft.lora_r == 4
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfigureScreen)
        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one(Input).value = "my-small"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, ConfigureScreen)
        assert load_config(path).peft.lora_r == 6


async def test_no_to_overwrite_goes_back_to_the_name_as_typed(make_app):
    save_config(find_preset("efficient").config(), user_dir() / "mine.toml")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await set_field(pilot, "steps", "33")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"mine", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        # the name prompt again, the name still in it, to be edited rather than retyped
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one(Input).value == "mine"
        assert "exists" in str(app.screen.query_one("#prompt-problem").render())
        await pilot.press(*"-too", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfigureScreen)
        assert load_config(user_dir() / "mine-too.toml").train.steps == 33
        assert load_config(user_dir() / "mine.toml") == find_preset("efficient").config()


async def test_load_toml_fills_the_form(make_app, tmp_path):
    cfg = find_preset("budget").config()
    cfg.train.steps = 77
    path = tmp_path / "mine.toml"
    save_config(cfg, path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        inp = app.screen.query_one(Input)
        inp.value = str(path)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.form.result.config == cfg
        assert app.screen.query_one(CommandPreview).command == f"aios-tui train --config {path}"


async def test_tab_from_the_tab_bar_goes_to_the_first_field(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        app.screen.set_focus(None)
        await pilot.press("tab", "tab")  # the preset picker, then the tab bar
        await pilot.press("right", "tab")  # the PEFT tab, then into it
        await pilot.pause()
        assert app.focused is app.screen.query_one("#f-use_peft")
        before = app.screen.form.values["use_peft"]
        await pilot.press("space")
        await pilot.pause()
        assert app.screen.form.values["use_peft"] is not before


async def test_field_help_follows_focus(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await focus_field(pilot, "lora_alpha", "peft")
        help_text = static_text(app.screen.query_one("#field-help"))
        assert "adapter scaling" in help_text and "1 to 1024" in help_text


async def test_every_fields_help_fits_at_80x24(make_app):
    """The help under the form is all that says what a field means: none may be cut short
    (dataset_file's help ends in what an empty value means)."""
    from aios_tui.config import field_index
    from aios_tui.ui.widgets.config_form import TABS
    tab_of = {name: key for key, _, sections in TABS
              for name, (section, _) in field_index().items() if section in sections}
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await all_rows(pilot)
        help_box = app.screen.query_one("#field-help")
        cut = []
        for name in field_index():
            await focus_field(pilot, name, tab_of[name])
            await pilot.pause()
            region = help_box.content_region
            needs = help_box.get_content_height(region, region, region.width)
            if needs > help_box.content_size.height:
                cut.append(f"{name}: {needs} lines in {help_box.content_size.height}")
        assert not cut, cut


async def test_palette_lists_every_footer_action(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for b in ConfigureScreen.BINDINGS:
            if b.action == "run_view":  # offered only once a run is open
                assert b.tooltip not in titles
            else:
                assert b.tooltip in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"equivalent")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, TextScreen)


async def test_real_calculator_drives_the_pane(runs_root):
    """With the real VRAM calculator (no stand-in), a bigger batch means a bigger peak."""
    import pytest
    vram = pytest.importorskip("aios_tui.vram")
    from console_fixtures import fixed_gpu
    from aios_tui.ui.app import AiosApp
    app = AiosApp(gpu=fixed_gpu(), runs_root=runs_root)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        pane = app.screen.query_one(VramPane)
        first = pane._estimate
        assert first and first["peak_allocated_bytes"] > 0
        await retype(pilot, "batch_size", "train", "32")
        await pilot.pause(0.3)
        assert pane._estimate["peak_allocated_bytes"] > first["peak_allocated_bytes"]
        assert pane._estimate == vram.estimate_for_run(app.screen.form.result.config, None,
                                                       140 * (1 << 30)).to_dict()


async def test_console_flags_fill_the_form(make_app):
    ns = build_parser().parse_args(["console", "--preset", "efficient", "--lora-r", "8", "--steps", "30"])
    cfg = config_from_args(ns)
    app = make_app(config=cfg, preset="efficient")
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        form = app.screen.form
        assert form.result.config == cfg
        assert form.row("lora_r").has_class("-changed") and form.row("steps").has_class("-changed")
        assert app.screen.query_one(CommandPreview).command == \
            "aios-tui train --preset efficient --lora-r 8 --steps 30"


async def test_a_broken_user_preset_is_reported_not_fatal(make_app):
    user_dir().mkdir(parents=True)
    (user_dir() / "broken.toml").write_text("this is = = not toml")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("broken.toml" in str(n.message) for n in app._notifications),
                       what="the broken preset's notice")
        assert isinstance(app.screen, ConfigureScreen)
        assert app.screen.form.result.config is not None


async def test_a_run_the_engine_would_refuse_is_not_started(make_app, runs_root, tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        await set_field(pilot, "dataset_file", str(tmp_path / "missing.jsonl"))
        assert app.screen.form.result.config is not None  # the form alone cannot know
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any(n.title == "run not started" for n in app._notifications),
                       120, "the refusal")
        refusal = [n.message for n in app._notifications if n.title == "run not started"]
        assert refusal == [f"dataset {tmp_path / 'missing.jsonl'}: no such file"]
        assert isinstance(app.screen, ConfigureScreen)
        assert not any(runs_root.iterdir())  # no dead run left behind


async def test_refusing_a_taken_run_name_is_one_notice_with_its_advice(make_app, runs_root):
    from runfiles import write_run
    write_run(runs_root, "taken", state="completed")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await all_rows(pilot)
        await set_field(pilot, "run_name", "taken")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any(n.title == "run not started" for n in app._notifications),
                       120, "the refusal")
        await pilot.pause(0.2)
        refusal = [n.message for n in app._notifications if n.title == "run not started"]
        assert len(refusal) == 1  # at 80x24 a second toast pushes the first off the screen
        assert "already holds a run" in refusal[0] and "pick another" in refusal[0]


async def test_picking_a_preset_over_edits_asks_first(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        screen = app.screen
        picker = screen.query_one("#preset", Select)
        before = picker.value
        await retype(pilot, "steps", "train", "7")
        assert screen.form.result.config.train.steps == 7
        picker.value = "efficient"
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "discard your 1 change" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, what="the form")
        await pilot.pause()
        assert screen.form.result.config.train.steps == 7 and picker.value == before
        assert not isinstance(app.screen, ConfirmScreen)  # putting the picker back asks nothing
        picker.value = "efficient"
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.form.result.config == find_preset("efficient").config(),
                       what="the preset")


async def test_the_command_line_is_not_shown_for_a_form_with_problems(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        await retype(pilot, "steps", "train", "5")
        preview = app.screen.query_one(CommandPreview)
        assert preview.command == "aios-tui train --steps 5"
        await retype(pilot, "eval_fraction", "model", "0.9")
        assert app.screen.form.result.config is None
        assert preview.command == ""
        assert "appears once the form's problems are fixed" in str(preview.render())


async def test_loading_a_runs_own_config_frees_its_directory(make_app, runs_root):
    from runfiles import write_run

    from aios_tui.config import resolve

    run = write_run(runs_root, "old-run", state="finished", steps=10, pid=0)
    cfg = resolve(overrides={"steps": 42, "run_dir": str(run.path), "run_name": "old-run"})
    path = runs_root.parent / "from-run.toml"
    save_config(cfg, path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query(Input), what="the prompt")
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("cleared" in str(n.message) for n in app._notifications),
                       what="the notice")
        loaded = app.screen.form.result.config
        assert loaded.train.steps == 42 and loaded.train.run_dir == "" and loaded.train.run_name == ""


async def test_loaded_values_show_their_start_not_their_tail(make_app, tmp_path):
    cfg = find_preset("balanced").config()
    cfg.peft.lora_target_modules = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj"
    cfg.train.run_name = "a-rather-long-run-name-for-a-narrow-field-to-show"
    path = tmp_path / "long.toml"
    save_config(cfg, path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await all_rows(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.query(Input), what="the prompt")
        app.screen.query_one(Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.form.result.config == cfg, what="the file")
        for name, tab in (("lora_target_modules", "peft"), ("run_name", "train")):
            app.screen.query_one("#form-tabs").active = f"tab-{tab}"
            await pilot.pause()
            editor = app.screen.query_one(f"#f-{name}", Input)
            assert editor.value == getattr(cfg.peft if tab == "peft" else cfg.train, name)
            assert editor.cursor_position == 0 and editor.scroll_offset.x == 0, name
            assert str(editor.render_line(0).text).lstrip().startswith(editor.value[:10]), name


async def test_loading_a_toml_over_edits_asks_first_and_names_the_file(make_app, tmp_path):
    from aios_tui.ui.screens.configure import FILE_CHOICE
    cfg = find_preset("budget").config()
    cfg.train.steps = 77
    path = tmp_path / "mine.toml"
    save_config(cfg, path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await all_rows(pilot)
        screen = app.screen
        picker = screen.query_one("#preset", Select)
        await retype(pilot, "steps", "train", "7")

        async def load_file() -> None:
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: app.screen.query("#prompt-input"), what="the prompt")
            app.screen.query_one("#prompt-input", Input).value = str(path)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")

        await load_file()
        title = str(app.screen.query_one(".dialog-title").render())
        assert "mine.toml" in title and "discard your 1 change" in title
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, what="the form")
        assert screen.form.result.config.train.steps == 7 and picker.value == ""
        await load_file()
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.form.result.config == cfg, what="the file")
        assert picker.value == FILE_CHOICE
        assert "mine.toml" in str(picker.query_one("#label").render())
        assert "same as" in static_text(screen.query_one(FormStatus))
        picker.value = "efficient"  # a preset over the unedited file: no question, the file entry goes
        await wait_for(pilot, lambda: screen.form.result.config == find_preset("efficient").config(),
                       what="the preset")
        assert not isinstance(app.screen, ConfirmScreen)
        assert picker.value == "efficient"
        assert FILE_CHOICE not in [value for _, value in picker._options]


def test_a_generated_run_name_says_when_an_hrm_brain_trains():
    from aios_tui.config import resolve
    from aios_tui.ui.runctl import run_name_for

    cfg = resolve()
    assert run_name_for(cfg, 0).startswith(f"{cfg.method_label()}-")
    assert run_name_for(cfg, 0, "train-actv1").startswith(f"hrm-{cfg.method_label()}-")


def test_the_start_check_tries_the_directory_the_start_would_use(tmp_path, monkeypatch):
    from aios_tui.config import resolve
    from aios_tui.errors import UserError
    from aios_tui.ui import runctl

    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "elsewhere"))  # writable, and not the console's root
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cfg = resolve(overrides={"steps": 2, "run_name": "checked"})
    with pytest.raises(UserError) as err:
        runctl.check_start(cfg, root=blocker / "runs")  # the console's runs root cannot be made
    assert "train.run_dir" in " ".join(err.value.problems) and str(blocker) in " ".join(err.value.problems)
    runctl.check_start(cfg, root=tmp_path / "runs")  # a root that can be written passes
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


async def test_the_header_counts_what_the_vram_estimate_finds_would_stop_a_start(make_app, tmp_path):
    """With the real calculator: a local model that is not there, or blocks longer than a
    learned position table, are problems (train refuses both); a hub id the calculator does not
    know is not (training downloads it)."""
    import json

    gpt = tmp_path / "gpt64"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 300,
        "n_positions": 64, "activation_function": "gelu_new", "tie_word_embeddings": True}))
    app = make_app(estimator=None)
    async with app.run_test(size=SIZE) as pilot:
        status = app.screen.query_one(FormStatus)

        async def header_after(name: str, value) -> str:
            await set_field(pilot, name, value)
            await pilot.pause(0.3)  # the estimate is debounced
            return static_text(status)

        header = await header_after("model", str(tmp_path / "x"))
        assert header.startswith(f"! 1 problem: model.model: {tmp_path / 'x'}: no such directory")
        assert "is not a directory" in pane_text(app)  # the pane keeps the calculator's words
        assert (await header_after("model", "tiny")).startswith("valid")
        header = await header_after("model", str(gpt))
        assert header.startswith("! 1 problem: data.max_seq_len: 128 is longer than the model's 64 positions")
        assert "use --max-seq-len 64 or less" in pane_text(app)  # as the estimate command says it
        assert (await header_after("max_seq_len", 64)).startswith("valid")
        assert (await header_after("model", "some-org/not-known-here")).startswith("valid")
        assert "not a model the estimate knows" in pane_text(app)


async def test_the_gpu_size_picker_offers_the_estimate_commands_gpus_by_size(make_app, cli):
    import json

    from console_fixtures import no_gpu

    code, out, _ = cli("estimate", "--list-gpus", "--json")
    assert code == 0
    listed = sorted((g["total_bytes"], g["label"]) for g in json.loads(out))
    app = make_app(gpu=no_gpu())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        select = app.screen.query_one("#gpu-size", Select)
        offered = [(int(value), str(label)) for label, value in select._options[1:]]
        assert offered == listed


async def test_a_run_started_while_a_dialog_is_open_leaves_the_dialog_alone(make_app, runs_root, monkeypatch):
    """The start's checks take seconds; a dialog opened meanwhile stays, its question answerable,
    and the run's view is a ctrl+b away once it closes."""
    import threading

    from aios_tui.ui import runctl
    from aios_tui.ui.screens.run import RunScreen

    checked = threading.Event()
    monkeypatch.setattr(runctl, "check_start", lambda *a, **k: checked.wait(10))
    monkeypatch.setattr(runctl, "start_detached", lambda args, path, **handed_down: 999999)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+r", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the save prompt")
        await pilot.press(*"mine")
        checked.set()
        await wait_for(pilot, lambda: app.current_run is not None, what="the run to start")
        await pilot.pause(0.1)
        assert [type(s) for s in app.screen_stack] == [ConfigureScreen, PromptScreen]
        assert app.screen.query_one(Input).value == "mine"
        await pilot.press("escape", "ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run's view")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="the form")
