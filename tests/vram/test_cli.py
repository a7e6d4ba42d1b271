"""`aios-tui estimate` end to end."""

from __future__ import annotations

import json
import sys

import pytest

from aios_tui.metrics.fmt import human_bytes


def test_estimate_json_with_a_config_only_model_dir(cli, config_dir):
    code, out, err = cli("estimate", "--preset", "efficient", "--model", str(config_dir), "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["peak_allocated_bytes"] > 0 and d["device_used_bytes"] > d["peak_allocated_bytes"]
    assert set(d["breakdown"]) >= {"base_weights", "adapter_weights", "gradients", "optimizer_states",
                                   "activations", "logits_and_loss", "framework_overhead"}
    assert sum(d["breakdown"].values()) == d["peak_allocated_bytes"]
    assert d["fits"] in (None, True, False)
    assert d["model"]["parameters"] == 494_032_768          # the Qwen2.5-0.5B shape
    assert d["parameters"]["trainable"] == 24 * 16 * ((896 + 896) + (896 + 128))   # q and v, GQA v is narrow


def test_estimate_against_a_named_gpu(cli):
    code, out, err = cli("estimate", "--preset", "high-quality", "--model", "meta-llama/Llama-3.1-8B",
                         "--batch-size", "4", "--max-seq-len", "2048", "--gpu-memory", "rtx4090")
    assert code == 0, err
    assert "DOES NOT FIT" in out and "peak allocated by PyTorch" in out
    assert "device memory in use (NVML)" in out and "--gradient-checkpointing" in out
    code, out, _ = cli("estimate", "--preset", "budget", "--gpu-memory", "80GiB")
    assert code == 0 and "fits," in out


def test_estimate_json_fits_against_gpu_memory(cli):
    code, out, _ = cli("estimate", "--preset", "efficient", "--gpu-memory", "24GiB", "--json")
    d = json.loads(out)
    assert code == 0 and d["fits"] is True and d["gpu_memory_bytes"] == 24 << 30
    code, out, _ = cli("estimate", "--model", "Qwen2.5-7B", "--model-dtype", "bf16", "--gpu-memory", "16GB", "--json")
    d = json.loads(out)
    assert d["fits"] is False and d["suggestions"]
    assert all({"change", "peak_allocated_bytes"} <= set(s) for s in d["suggestions"])


def test_estimate_hrm(cli):
    code, out, err = cli("estimate", "--hrm", "--halt-max-steps", "3",
                         "--use-peft", "--lora-target-modules", "q_proj,v_proj", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["model"]["family"] == "hrm_actv1" and d["model"]["halt_max_steps"] == 3


def test_listings(cli):
    code, out, _ = cli("estimate", "--list-gpus")
    assert code == 0 and "RTX 4090 24 GB" in out and "H200 141 GB" in out
    code, out, _ = cli("estimate", "--list-models")
    assert code == 0 and "meta-llama/Llama-3.2-1B" in out
    # a shape's id and type, then the other ids that name it, each on a line of its own
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Qwen/Qwen3-8B-Base "))
    assert lines[at].split()[1] == "qwen3" and lines[at + 1] == "  also: Qwen/Qwen3-8B"
    assert max(map(len, lines)) <= 80


def test_listings_as_json(cli):
    from aios_tui.vram import GPUS

    code, out, err = cli("estimate", "--list-gpus", "--json")
    assert code == 0, err
    gpus = json.loads(out)
    assert len(gpus) == len(GPUS)
    assert {"key": "h200", "label": "H200 141 GB", "total_bytes": 143771 * 1024 ** 2} in gpus
    code, out, err = cli("estimate", "--list-models", "--json")
    assert code == 0, err
    models = json.loads(out)
    assert models[0] == "tiny" and "meta-llama/Llama-3.2-1B" in models


@pytest.mark.parametrize("args, ignored", [
    (["--list-gpus", "--list-models"], "--list-models has no effect"),
    (["--list-models", "--gpu-memory", "24G", "--hrm", "--detail"], "--gpu-memory, --hrm, --detail have no effect"),
    (["--list-gpus", "--preset", "fast", "--no-amp", "--lora-r", "8"], "--preset, --no-amp, --lora-r have no effect"),
])
def test_listings_refuse_what_they_would_ignore(cli, args, ignored):
    code, out, err = cli("estimate", *args, "--json")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"aios-tui: error: {args[0]} prints a list and exits, so {ignored} with it; drop ")


def test_help_says_json_covers_the_listings(capsys):
    from aios_tui.cli import main

    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    assert "with --list-gpus or --list-models, the list" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("args,needle", [
    (["--gpu-memory", "lots"], "not a memory size"),
    (["--gpu-memory", "12XB"], "unknown unit"),
    (["--gpu-memory", "a100"], "names more than one GPU; pick one: a100-40, a100-80"),
    (["--model", "/nonexistent/dir/model"], "model"),
    (["--model", "some-org/unknown-model"], "config.json"),
    (["--preset", "efficient", "--lora-target-modules", "qkv_proj"], "qkv_proj"),
    (["--batch-size", "0"], "batch_size"),
    (["--preset", "nope"], "nope"),
])
def test_bad_inputs_exit_2(cli, args, needle):
    code, out, err = cli("estimate", *args)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert out == ""


def test_dir_without_config_json_exits_2(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("estimate", "--model", str(tmp_path / "empty"))
    assert code == 2 and "config.json" in err


def test_help_works(cli_subprocess):
    r = cli_subprocess("estimate", "--help")
    assert r.returncode == 0 and "--gpu-memory" in r.stdout and "config.json" in r.stdout


def test_estimate_runs_without_torch(cli_subprocess, config_dir):
    """The command (and the console's VRAM pane) must not pay for importing torch."""
    code = ("import sys, runpy; sys.argv = ['aios-tui', 'estimate', '--preset', 'efficient', '--model', "
            f"{str(config_dir)!r}, '--gpu-memory', '24GiB'];\n"
            "from aios_tui.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert 'transformers' not in sys.modules\n"
            "raise SystemExit(rc)")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "peak allocated by PyTorch" in r.stdout


def test_a_combination_that_fits_names_each_change_once_and_fits():
    from aios_tui.config import resolve
    from aios_tui.vram.run import estimate_for_run

    cfg = resolve(overrides={"model": "meta-llama/Llama-3.1-8B", "use_peft": True, "batch_size": 16,
                             "max_seq_len": 4096})
    gib = 1 << 30
    est = estimate_for_run(cfg, gpu_memory_bytes=24 * gib)
    assert est.fits is False
    combo = est.suggestions[0]
    assert combo.fits and combo.device_used_bytes <= 24 * gib and " + " in combo.change
    assert combo.change.count("batch ") == 1 and combo.flags.count("--batch-size") == 1
    assert not ("--amp" in combo.flags.split() and "--model-dtype" in combo.flags)
    # The combination's own flags, through the real parser, give the figure it promises.
    from aios_tui.cli import build_parser
    from aios_tui.config import config_from_args

    args = build_parser().parse_args(["train", "--model", "meta-llama/Llama-3.1-8B", "--use-peft",
                                      "--batch-size", "16", "--max-seq-len", "4096", *combo.flags.split()])
    again = estimate_for_run(config_from_args(args), gpu_memory_bytes=24 * gib)
    assert again.fits and again.device_used_bytes == combo.device_used_bytes


def _config_dir(tmp_path, **fields):
    import json as _json

    d = tmp_path / "model"
    d.mkdir()
    base = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 1000}
    (d / "config.json").write_text(_json.dumps({**base, **fields}))
    return d


@pytest.mark.parametrize("fields,needle", [
    ({"num_key_value_heads": "x"}, "num_key_value_heads"),
    ({"head_dim": "64"}, "head_dim"),
    ({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128, "n_inner": [1]},
     "n_inner"),
])
def test_a_config_with_a_malformed_optional_field_exits_2(cli, tmp_path, fields, needle):
    code, out, err = cli("estimate", "--model", str(_config_dir(tmp_path, **fields)))
    assert code == 2 and needle in err and "Traceback" not in err and out == ""


def test_a_mixture_of_experts_config_is_refused_not_counted_as_dense(cli, tmp_path):
    d = _config_dir(tmp_path, model_type="mixtral", num_local_experts=8, num_experts_per_tok=2)
    code, out, err = cli("estimate", "--model", str(d))
    assert code == 2 and "mixture of experts" in err and out == ""


@pytest.mark.parametrize("fields,what", [
    ({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "(BertForMaskedLM) is a bidirectional encoder"),
    ({"model_type": "clip_text_model"}, "(clip_text_model) is a bidirectional encoder"),
    ({"model_type": "vit", "vocab_size": None, "image_size": 224}, "(vit) is an image or audio model"),
])
def test_a_model_that_is_no_causal_lm_is_refused_not_counted_as_a_decoder(cli, tmp_path, fields, what):
    """train refuses these (engine.models.causal_lm_problem); a budget for them would be for nothing."""
    import json as _json

    d = _config_dir(tmp_path, **fields)
    values = {k: v for k, v in _json.loads((d / "config.json").read_text()).items() if v is not None}
    (d / "config.json").write_text(_json.dumps(values))
    code, out, err = cli("estimate", "--model", str(d))
    assert code == 2 and out == "" and err.startswith("aios-tui: error: model config: model ") and what in err, err


def test_an_encoder_made_a_decoder_is_counted(cli, tmp_path):
    code, out, err = cli("estimate", "--model", str(_config_dir(tmp_path, model_type="bert", is_decoder=True)))
    assert code == 0 and "peak allocated" in out, err


@pytest.mark.parametrize("text", ["24", "80", "0.5"])
def test_a_gpu_memory_without_a_unit_that_cannot_be_bytes_exits_2(cli, text):
    code, out, err = cli("estimate", "--gpu-memory", text)
    assert code == 2 and f"{text}GiB" in err and out == ""


def test_a_bare_gpu_number_names_that_gpu():
    from aios_tui.vram import find_gpu, parse_size

    assert parse_size("4090") == find_gpu("rtx4090").total_bytes
    assert parse_size("3090") == find_gpu("rtx3090").total_bytes
    assert parse_size(str(24 << 30)) == 24 << 30


@pytest.mark.parametrize("argv,gpu", [
    (["--model", "meta-llama/Llama-3.2-1B"], "t4"),                          # full -> LoRA
    (["--model", "meta-llama/Llama-3.2-1B", "--model-dtype", "bf16", "--amp"], "rtx3080"),
    (["--model", "meta-llama/Llama-3.2-1B", "--use-peft", "--lora-target-modules", "q_proj,v_proj",
      "--amp"], "4GiB"),                                                     # bf16 weights, kept autocast
    (["--model", "meta-llama/Llama-3.1-8B", "--use-peft", "--lora-target-modules", "q_proj,v_proj",
      "--load-in-8bit"], "t4"),                                              # checkpointing an adapter
    (["--model", "Qwen/Qwen2.5-0.5B", "--model-dtype", "bf16", "--amp", "--batch-size", "4",
      "--max-seq-len", "128"], "4GiB"),                                      # the loss in one piece
    (["--model", "meta-llama/Llama-3.2-1B", "--use-peft", "--peft-method", "adalora", "--lora-r", "64",
      "--adalora-init-r", "64", "--lora-target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
      "--model-dtype", "bf16", "--gradient-checkpointing", "--use-8bit-optimizer", "--batch-size", "1"],
     "1GiB"),                                                                # AdaLoRA's rank: target and start
])
def test_every_suggestion_applied_as_flags_gives_its_figure(argv, gpu):
    import shlex

    from aios_tui.cli import build_parser
    from aios_tui.config import config_from_args
    from aios_tui.vram import parse_size
    from aios_tui.vram.run import estimate_for_run

    def estimate(extra):
        args = build_parser().parse_args(["estimate", *argv, *extra])
        return estimate_for_run(config_from_args(args), gpu_memory_bytes=parse_size(gpu))

    est = estimate([])
    assert est.suggestions
    for sg in est.suggestions:
        again = estimate(shlex.split(sg.flags))
        assert (again.peak_allocated_bytes, again.device_used_bytes, again.fits) == \
            (sg.peak_allocated_bytes, sg.device_used_bytes, sg.fits), sg.flags


def test_a_model_type_counted_as_llama_says_so_and_where_targets_are_checked(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "acme_decoder", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128, "vocab_size": 100}))
    code, out, err = cli("estimate", "--model", str(tmp_path), "--use-peft")
    assert code == 0, err
    assert "acme_decoder: counted as a Llama-style decoder" in out
    assert "`aios-tui train --check` checks the targets" in out
    # the engine's fused loss is for the types it knows the head of: not offered here, even
    # where the logits dominate
    big = tmp_path / "big-vocab"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({**json.loads((tmp_path / "config.json").read_text()),
                                                 "vocab_size": 64000}))
    code, out, err = cli("estimate", "--model", str(big), "--use-peft", "--fused-loss", "--json")
    data = json.loads(out)
    assert not any(a.startswith("loss: chunked") for a in data["assumptions"])
    assert "--fused-loss" not in [sg["flags"] for sg in data["suggestions"]]


def test_the_loss_in_one_piece_is_suggested_where_it_is_the_smaller():
    from aios_tui.config import resolve
    from aios_tui.vram.run import estimate_for_run

    small = resolve(overrides={"model": "Qwen/Qwen2.5-0.5B", "model_dtype": "bf16", "amp": True,
                               "batch_size": 4, "max_seq_len": 128})
    flags = [sg.flags for sg in estimate_for_run(small, gpu_memory_bytes=4 << 30).suggestions]
    assert "--no-fused-loss" in flags
    long = resolve(overrides={"model": "meta-llama/Llama-3.2-1B", "use_peft": True, "max_seq_len": 2048})
    assert "--no-fused-loss" not in [sg.flags for sg in estimate_for_run(long, gpu_memory_bytes=4 << 30).suggestions]


def test_paged_8bit_optimizer_states_show_beside_the_allocator_and_count_in_the_device_total(cli):
    # PyTorch's optimizer row holds only the small unpaged states, so as the rank rises that row
    # barely moves; the paged share must be shown, and grow with the adapter.
    paged = []
    for r in ("16", "64"):
        argv = ["estimate", "--model", "meta-llama/Llama-3.2-1B", "--device", "cuda", "--model-dtype", "bf16",
                "--use-peft", "--lora-r", r, "--lora-target-modules", "q_proj,v_proj,gate_proj",
                "--use-8bit-optimizer"]
        code, out, err = cli(*argv, "--json")
        assert code == 0, err
        est = json.loads(out)
        assert est["paged_optimizer_bytes"] > 0
        assert est["device_used_bytes"] >= est["peak_reserved_bytes"] + est["paged_optimizer_bytes"]
        paged.append(est["paged_optimizer_bytes"])
        code, out, err = cli(*argv)
        line = next(x for x in out.splitlines() if "paged optimizer states" in x)
        assert human_bytes(est["paged_optimizer_bytes"]) in line
    assert paged[1] > 3 * paged[0]
    code, out, err = cli("estimate", "--model", "meta-llama/Llama-3.2-1B", "--device", "cpu",
                         "--use-peft", "--use-8bit-optimizer")
    assert code == 0 and "paged" not in out  # bitsandbytes pages only on CUDA


def _model_dir(tmp_path, cfg):
    d = tmp_path / cfg["model_type"]
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_phi3_is_estimated_under_its_own_layer_names(cli, tmp_path):
    from vram_helpers import LAYOUTS

    d = _model_dir(tmp_path, LAYOUTS["phi3"])
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "qkv_proj",
                         "--lora-r", "8", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["model"]["family"] == "phi3" and not any("approximate" in a for a in data["assumptions"])
    # fused q/k/v: [64 -> 64 + 2 x 32] per layer, two layers
    assert data["parameters"]["trainable"] == 2 * 8 * (64 + 128)
    # Llama's names stand for phi3's own layers in that role, as in the engine
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "q_proj,v_proj",
                         "--lora-r", "8", "--json")
    assert code == 0, err
    assert json.loads(out)["parameters"]["trainable"] == 2 * 8 * (64 + 128)
    assert "q_proj/v_proj -> qkv_proj" in json.loads(out)["assumptions"][0]
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "qkv_proj,c_attn")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "c_attn matches no layer" in err
    assert "its linear layers are: qkv_proj, o_proj, gate_up_proj, down_proj, lm_head" in err
    assert "for example: --lora-target-modules qkv_proj" in err


@pytest.mark.parametrize("model_type,targets", [("phi3", "qkv_proj"), ("gpt_neox", "query_key_value"),
                                                ("gemma", "q_proj,v_proj")])
def test_a_full_fine_tune_is_offered_lora_on_layers_the_model_has(tmp_path, model_type, targets):
    from vram_helpers import LAYOUTS

    from aios_tui.config import resolve
    from aios_tui.vram.run import estimate_for_run

    d = _model_dir(tmp_path, {**LAYOUTS[model_type], "hidden_size": 1024, "intermediate_size": 4096,
                              "num_hidden_layers": 8, "vocab_size": 32000})
    est = estimate_for_run(resolve(overrides={"model": str(d)}), gpu_memory_bytes=2 << 30)
    lora = [sg for sg in est.suggestions if "--use-peft" in sg.flags]
    assert lora and all(f"--lora-target-modules {targets} " in sg.flags + " " for sg in lora)


def test_a_multimodal_gemma3_counts_its_text_model_and_says_so(cli, tmp_path):
    from vram_helpers import LAYOUTS

    text = {k: v for k, v in LAYOUTS["gemma3_text"].items() if k != "model_type"}
    d = _model_dir(tmp_path, {"model_type": "gemma3", "text_config": {**text, "model_type": "gemma3_text"}})
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "q_proj", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["model"]["model_type"] == "gemma3_text"
    assert any(a.startswith("gemma3: only its gemma3_text text model is counted") for a in data["assumptions"])


def test_gemma2_is_counted_with_the_eager_attention_it_runs(cli, tmp_path):
    from vram_helpers import LAYOUTS

    d = _model_dir(tmp_path, LAYOUTS["gemma2"])
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "q_proj")
    assert code == 0, err
    assert "no SDPA attention" in out and "final_logit_softcapping" in out


@pytest.mark.parametrize("model_type", ["olmo", "granite-multipliers"])
def test_olmo_and_granite_are_laid_out_and_granite_s_scaled_logits_keep_the_plain_loss(cli, tmp_path, model_type):
    from vram_helpers import LAYOUTS

    d = _model_dir(tmp_path, LAYOUTS[model_type])
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--fused-loss", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert not any("approximate" in a for a in data["assumptions"])
    scaled = model_type == "granite-multipliers"
    assert any(a.startswith("logits_scaling: the logits are divided by 8") for a in data["assumptions"]) == scaled
    # OLMo runs the fused loss already; Granite's division keeps the engine off it
    assert any(a.startswith("loss: chunked") for a in data["assumptions"]) == (not scaled)
    assert "--fused-loss" not in [sg["flags"] for sg in data["suggestions"]]


def test_gpt_neox_head_is_named_as_the_installed_transformers_names_it(monkeypatch):
    from vram_helpers import LAYOUTS

    from aios_tui.vram import decoders, shape_from_hf_config

    assert shape_from_hf_config(LAYOUTS["gpt_neox"]).linear_names()[-1] == "lm_head"
    monkeypatch.setattr(decoders.metadata, "version", lambda name: "4.57.1")
    shape = shape_from_hf_config(LAYOUTS["gpt_neox"])
    assert shape.head_name == "embed_out" and shape.linear_names()[-1] == "embed_out"


def test_opt_350m_is_estimated_by_name_with_its_projections(cli):
    code, out, err = cli("estimate", "--model", "facebook/opt-350m", "--use-peft", "--lora-r", "8",
                         "--lora-target-modules", "q_proj,project_in,project_out", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["model"]["parameters"] == 331_196_416 and d["model"]["word_embed_proj_dim"] == 512
    assert not any("approximate" in a for a in d["assumptions"])
    # q_proj in 24 blocks [1024 -> 1024]; project_in [512 -> 1024] and project_out [1024 -> 512] once
    assert d["parameters"]["trainable"] == 24 * 8 * 2048 + 2 * 8 * (512 + 1024)


@pytest.mark.parametrize("name,fused", [("bloom", "query_key_value"), ("mpt", "Wqkv")])
def test_bloom_and_mpt_are_estimated_under_their_own_layers_with_eager_attention(cli, tmp_path, name, fused):
    """Neither config names an MLP width; the estimate knows it is 4 x hidden and says nothing
    is approximate."""
    from vram_helpers import LAYOUTS

    d = _model_dir(tmp_path, LAYOUTS[name])
    code, out, err = cli("estimate", "--model", str(d), "--use-peft", "--lora-target-modules", "q_proj,v_proj",
                         "--lora-r", "8", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["model"]["family"] == name and data["model"]["intermediate_size"] == 256
    assert not any("approximate" in a for a in data["assumptions"])
    assert f"q_proj/v_proj -> {fused}" in data["assumptions"][0]
    assert any("no SDPA attention" in a for a in data["assumptions"])
    assert data["parameters"]["trainable"] == 2 * 8 * (64 + 192)     # [64 -> 3 x 64] per layer, two layers


def test_the_breakdown_says_it_is_the_peak_and_where_gradients_that_are_not_there_go(cli):
    """A full fine-tune peaks at the loss, before backward has made any gradient: the row reads
    0 B at that moment, and says how big the gradients get."""
    code, out, err = cli("estimate", "--model", "gpt2")
    assert code == 0, err
    assert "Held at the peak (at the loss, end of forward):" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("gradients"))
    grads = human_bytes(124_439_808 * 4)
    assert row.split()[1:3] == ["0", "B"] and f"none at the peak; {grads} at the optimizer step" in row
    code, out, _ = cli("estimate", "--model", "gpt2", "--json")
    d = json.loads(out)
    assert d["breakdown"]["gradients"] == 0 and d["peak_phase"] == "loss"
    assert d["phase_breakdowns"]["optimizer"]["gradients"] == 124_439_808 * 4
    assert all(sum(bd.values()) == d["phases"][m] for m, bd in d["phase_breakdowns"].items())
    assert d["phase_breakdowns"][d["peak_phase"]] == d["breakdown"]


@pytest.mark.parametrize("text", ["0", "0GiB", "0.0000000001"])
def test_a_gpu_memory_of_nothing_is_refused_without_offering_another_nothing(cli, text):
    code, out, err = cli("estimate", "--gpu-memory", text)
    assert code == 2 and out == ""
    assert "must be positive" in err and "0GiB or" not in err


@pytest.mark.parametrize("argv", [["--gpu-memory", "-5GiB"], ["--gpu-memory=-5GiB"], ["--gpu-memory", "-5"]])
def test_a_negative_gpu_memory_gets_the_size_check_not_a_missing_argument(cli, argv):
    """A value that starts with a minus is still the option's value ('-5' no GPU's name either)."""
    code, out, err = cli("estimate", *argv)
    value = argv[-1].split("=")[-1]
    assert (code, out, err) == (2, "", f"aios-tui: error: '{value}': GPU memory must be positive\n")


def test_a_state_space_model_is_named_as_a_type_the_estimate_cannot_count(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", "hidden_size": 768,
                                                      "num_hidden_layers": 24, "vocab_size": 50280,
                                                      "state_size": 16}))
    code, out, err = cli("estimate", "--model", str(tmp_path))
    assert code == 2 and out == ""
    assert "model type 'mamba' is not a decoder the estimate can count" in err
    assert "attention heads (looked for" not in err


def test_adalora_shows_its_starting_rank_and_the_target_the_preset_lists(cli):
    code, out, err = cli("estimate", "--preset", "adaptive")
    assert code == 0, err
    assert "adalora r=24->16 on" in out
    code, out, _ = cli("estimate", "--preset", "adaptive", "--json")
    setup = json.loads(out)["setup"]
    assert (setup["r"], setup["target_r"]) == (24, 16)


def test_hrm_is_titled_as_the_hrm_model_not_as_the_tokenizer_s(cli):
    code, out, err = cli("estimate", "--hrm")
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("VRAM estimate for the HRM ACTv1 model (hrm settings, tiny's vocabulary, ")
    assert "for tiny" not in first
