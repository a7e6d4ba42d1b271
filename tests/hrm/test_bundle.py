"""Brain bundles: what they hold, exact reloads, adapters kept apart or merged, history."""

from __future__ import annotations

import json

import pytest
import torch

from aios_tui.engine.hrm.bundle import (
    ADAPTER_DIR, BRAIN_FILE, METRICS_FILE, WEIGHTS_FILE, load_base, load_bundle, merge_bundle,
    read_brain, write_bundle,
)
from aios_tui.errors import UserError


@pytest.fixture
def tokenizer():
    from aios_tui.engine.tokenizer import byte_tokenizer

    return byte_tokenizer()


def _lora(model, targets=("q_proj", "v_proj")):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                  modules_to_save=["q_head"]))
    with torch.no_grad():  # as if trained: adapter and head away from their initial values
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return peft_model


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(input_ids=x).logits


def test_a_full_bundle_reloads_bit_identical(make_model, tokens, tokenizer, tmp_path):
    model = make_model()
    dest = write_bundle(tmp_path / "brain", model=model, tokenizer=tokenizer,
                        session={"steps": 7, "method": "full"}, tokenizer_source="tiny")
    names = {p.name for p in dest.iterdir()}
    assert {WEIGHTS_FILE, BRAIN_FILE, "config.json", METRICS_FILE, "tokenizer.json"} <= names
    assert ADAPTER_DIR not in names
    loaded = load_bundle(dest)
    x = tokens(2, 12)
    assert torch.equal(_logits(model, x), _logits(loaded.model, x))
    assert loaded.tokenizer("hi")["input_ids"] == tokenizer("hi")["input_ids"]
    brain = read_brain(dest)
    assert brain["training_steps"] == 7
    assert brain["architecture"]["hidden_size"] == 64
    assert brain["tokenizer"]["source"] == "tiny" and "tokenizer.json" in brain["tokenizer"]["files"]
    assert brain["adapter"] is None


def test_a_peft_bundle_keeps_the_adapter_apart(make_model, tokens, tokenizer, tmp_path):
    base = make_model()
    base_logits = _logits(base, tokens(2, 12))
    peft_model = _lora(base)
    x = tokens(2, 12)
    trained = _logits(peft_model, x)
    dest = write_bundle(tmp_path / "b", model=peft_model, tokenizer=tokenizer, session={"steps": 1},
                        tokenizer_source="tiny", peft_summary={"method": "lora"})
    assert (dest / ADAPTER_DIR / "adapter_config.json").is_file()
    # The stored weights are the untouched base the adapter applies to...
    assert torch.equal(_logits(load_base(dest), x), base_logits)
    # ...with the adapter: exactly the trained model, or merged: the same up to rounding.
    assert torch.equal(_logits(load_bundle(dest, adapter="keep").model, x), trained)
    torch.testing.assert_close(_logits(load_bundle(dest, adapter="merge").model, x), trained,
                               rtol=1e-4, atol=1e-5)
    assert read_brain(dest)["adapter"]["method"] == "lora"


def test_merge_bundle_folds_the_adapter_into_a_new_bundle(make_model, tokens, tokenizer, tmp_path):
    peft_model = _lora(make_model())
    x = tokens(2, 12)
    trained = _logits(peft_model, x)
    src = write_bundle(tmp_path / "b", model=peft_model, tokenizer=tokenizer, session={"steps": 3},
                       tokenizer_source="tiny")
    merged = merge_bundle(src, tmp_path / "b-merged")
    assert not (merged / ADAPTER_DIR).exists()
    torch.testing.assert_close(_logits(load_base(merged), x), trained, rtol=1e-4, atol=1e-5)
    brain = read_brain(merged)
    assert brain["training_steps"] == 3 and brain["sessions"][-1]["kind"] == "merge"
    with pytest.raises(UserError, match="no adapter"):
        merge_bundle(merged, tmp_path / "again")


def test_history_follows_the_weights(make_model, tokenizer, tmp_path):
    runs = tmp_path / "m1.jsonl"
    runs.write_text('{"peft":"disabled"}\n{"step":1,"loss":2.0}\n')
    first = write_bundle(tmp_path / "a", model=make_model(), tokenizer=tokenizer, tokenizer_source="tiny",
                         session={"steps": 10, "run_dir": "/r/1", "dataset": {"path": "/d/one.txt"}},
                         metrics_file=runs, run_key="/r/1")
    more = tmp_path / "m2.jsonl"
    more.write_text('{"peft":"enabled"}\n{"step":1,"loss":1.0}\n')
    second = write_bundle(tmp_path / "b", model=make_model(seed=3), tokenizer=tokenizer,
                          tokenizer_source="tiny", parent=first, metrics_file=more, run_key="/r/2",
                          session={"steps": 5, "run_dir": "/r/2", "dataset": {"path": "/d/two.txt"}})
    brain = read_brain(second)
    assert brain["training_steps"] == 15
    assert [s["run_dir"] for s in brain["sessions"]] == ["/r/1", "/r/2"]
    assert [d["path"] for d in brain["dataset_history"]] == ["/d/one.txt", "/d/two.txt"]
    assert brain["parent"] == str(first.resolve())
    lines = (second / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line).get("loss") for line in lines] == [None, 2.0, None, 1.0]

    # The same run writing again (resumed for more steps) replaces its record, not adds one.
    more.write_text('{"peft":"enabled"}\n{"step":1,"loss":1.0}\n{"step":2,"loss":0.5}\n')
    again = write_bundle(second, model=make_model(seed=4), tokenizer=tokenizer, tokenizer_source="tiny",
                         parent=second, metrics_file=more, run_key="/r/2",
                         session={"steps": 8, "run_dir": "/r/2", "dataset": {"path": "/d/two.txt"}})
    brain = read_brain(again)
    assert brain["training_steps"] == 18
    assert [s["run_dir"] for s in brain["sessions"]] == ["/r/1", "/r/2"]
    assert [d["path"] for d in brain["dataset_history"]] == ["/d/one.txt", "/d/two.txt"]
    lines = (again / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line).get("loss") for line in lines] == [None, 2.0, None, 1.0, 0.5]
    assert brain["parent"] == str(first.resolve())


def test_a_failed_write_leaves_the_old_bundle_alone(make_model, tokenizer, tmp_path, monkeypatch):
    dest = write_bundle(tmp_path / "a", model=make_model(), tokenizer=tokenizer, session={"steps": 1},
                        tokenizer_source="tiny")
    before = (dest / WEIGHTS_FILE).read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tokenizer, "save_pretrained", broken)
    with pytest.raises(OSError):
        write_bundle(dest, model=make_model(seed=5), tokenizer=tokenizer, session={"steps": 2},
                     tokenizer_source="tiny")
    assert (dest / WEIGHTS_FILE).read_bytes() == before
    assert read_brain(dest)["training_steps"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary left behind


def test_unusable_bundles_are_user_errors(tmp_path, make_model, tokenizer):
    with pytest.raises(UserError, match="no such directory"):
        read_brain(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no brain.json"):
        read_brain(tmp_path / "empty")
    dest = write_bundle(tmp_path / "ok", model=make_model(), tokenizer=tokenizer, session={"steps": 1},
                        tokenizer_source="tiny")
    (dest / WEIGHTS_FILE).unlink()
    with pytest.raises(UserError, match=WEIGHTS_FILE):
        read_brain(dest)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / BRAIN_FILE).write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="not 'hrm_actv1'"):
        read_brain(tmp_path / "odd")


def test_export_bundle_writes_the_adapter_or_a_merged_bundle(make_model, tokens, tokenizer, tmp_path):
    from peft import PeftModel

    from aios_tui.engine.hrm.bundle import export_bundle

    peft_model = _lora(make_model())
    x = tokens(2, 12)
    trained = _logits(peft_model, x)
    src = write_bundle(tmp_path / "b", model=peft_model, tokenizer=tokenizer, session={"steps": 1},
                       tokenizer_source="tiny")
    out, kind = export_bundle(src)
    assert kind == "adapter" and out == tmp_path / "b-adapter"
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(src.resolve())
    again = PeftModel.from_pretrained(load_base(config["base_model_name_or_path"]), str(out))
    assert torch.equal(_logits(again, x), trained)
    with pytest.raises(UserError, match="not empty"):
        export_bundle(src, out)
    merged, kind = export_bundle(src, merge=True)
    assert kind == "bundle" and merged == tmp_path / "b-merged"
    torch.testing.assert_close(_logits(load_base(merged), x), trained, rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="no adapter"):
        export_bundle(merged)


def test_a_shared_log_file_gives_each_bundle_only_its_own_run(tmp_path):
    from aios_tui.engine.hrm.bundle import run_lines

    shared = tmp_path / "metrics.jsonl"
    lines = [{"peft": "enabled", "run_dir": "/runs/a"}, {"event": "started", "run_dir": "/runs/a"},
             {"step": 1, "loss": 3.0}, {"event": "finished"},
             {"event": "started", "run_dir": "/runs/b"}, {"step": 1, "loss": 2.0}]
    shared.write_text("".join(json.dumps(r) + "\n" for r in lines))
    mine = [json.loads(x) for x in run_lines(shared, "/runs/b").splitlines()]
    assert mine == lines[4:]
    assert json.loads(run_lines(shared, "/runs/a").splitlines()[0]) == lines[0]


def test_exporting_a_bundles_adapter_prints_where_it_went_and_a_command_that_uses_it(
        make_model, tokenizer, tmp_path, cli_subprocess):
    # In a fresh process transformers does not know the bundle's model type, and reading the
    # tokenizer beside its config.json must not show the user transformers' warning about it.
    src = write_bundle(tmp_path / "b", model=_lora(make_model()), tokenizer=tokenizer,
                       session={"steps": 1}, tokenizer_source="tiny")
    done = cli_subprocess("export", str(src))
    assert done.returncode == 0, done.stderr
    out = tmp_path.resolve() / "b-adapter"
    assert done.stdout.splitlines() == [f"adapter written to {out}",
                                        f"use it with: aios-tui generate {out} --prompt TEXT"]
    assert done.stderr == ""
    used = cli_subprocess("generate", str(out), "--prompt", "hi", "--max-new-tokens", "2")
    assert used.returncode == 0, used.stderr


def test_tail_of_a_bundle_or_shared_log_file_describes_its_last_run(tmp_path):
    """A bundle's metrics.jsonl (and AI-OS's shared --log-file) holds one run after another:
    `aios-tui tail` heads them with the last run's header and counts each run's own steps."""
    import io

    from aios_tui.metrics.tailer import tail_command

    def header(method, steps, trainable):
        return {"peft": "enabled" if method != "full" else "disabled", "method": method,
                "config": {"train": {"steps": steps}}, "model": "HRM ACTv1",
                "parameters": {"trainable": trainable, "total": 1000,
                               "trainable_pct": trainable / 10}, "device": "cpu"}

    lines = [header("full", 30, 1000), {"event": "started", "step": 0, "total_steps": 30},
             *({"step": i, "loss": 5.0 - i / 10} for i in (1, 30)), {"event": "finished", "step": 30},
             header("lora", 8, 20), {"event": "started", "step": 0, "total_steps": 8},
             *({"step": i, "loss": 3.0} for i in (1, 8)), {"event": "finished", "step": 8}]
    bundle = tmp_path / "brain"
    bundle.mkdir()
    (bundle / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = io.StringIO()
    assert tail_command(str(bundle), lines=4, out=out) == 0
    text = out.getvalue().splitlines()
    assert "method lora" in text[0] and "(2.00%)" in text[0]
    assert [t.split()[1] for t in text if t.startswith("step")] == ["1/8", "8/8"]


def test_a_merge_never_replaces_another_brain_or_directory(make_model, tokenizer, tmp_path):
    """`aios-tui export BUNDLE --merge --out DIR` (and --merge-adapter NAME) replace only an
    earlier merge of the same bundle: never a trained brain, nor a directory of other files."""
    from aios_tui.engine.hrm.bundle import export_bundle

    src = write_bundle(tmp_path / "b", model=_lora(make_model()), tokenizer=tokenizer,
                       session={"steps": 1}, tokenizer_source="tiny")
    other = write_bundle(tmp_path / "other", model=make_model(seed=3), tokenizer=tokenizer,
                         session={"steps": 7}, tokenizer_source="tiny")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("keep me")
    before = (other / WEIGHTS_FILE).read_bytes()
    for dest in (other, data):
        with pytest.raises(UserError, match="exists and is not an earlier merge"):
            export_bundle(src, dest, merge=True)
    assert (other / WEIGHTS_FILE).read_bytes() == before and read_brain(other)["training_steps"] == 7
    assert (data / "train.txt").read_text() == "keep me"
    merged, _ = export_bundle(src, merge=True)
    assert export_bundle(src, merge=True)[0] == merged  # an earlier merge of b is replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export_bundle(src, empty, merge=True)[0] == empty
