"""The calculator is stdlib only: importing and running it loads no torch."""

from __future__ import annotations

import subprocess
import sys


def test_vram_imports_no_torch():
    code = ("import sys\n"
            "import aios_tui.vram as v\n"
            "from aios_tui.config import resolve\n"
            "cfg = resolve('efficient', overrides={'max_seq_len': 512})\n"
            "e = v.estimate_for_run(cfg, gpu_memory_bytes=8 << 30)\n"
            "assert e.peak_allocated_bytes > 0\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'numpy', 'bitsandbytes', 'textual') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_estimate_for_run_accepts_real_config_dicts():
    """The engine passes model.config.to_dict(): every key transformers writes must be accepted."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    from aios_tui.config import resolve
    from aios_tui.tiny import TINY_CONFIG
    from aios_tui.vram import estimate_for_run

    cfg = resolve("efficient")
    tiny = {k: v for k, v in TINY_CONFIG.items() if k not in ("model_type", "architectures")}
    for hf in (LlamaConfig(**tiny), Qwen2Config(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                                 num_attention_heads=4, num_key_value_heads=2, vocab_size=500)):
        est = estimate_for_run(cfg, hf.to_dict())
        assert est.params_total > 0 and est.params_trainable > 0
    gpt2 = resolve("efficient", overrides={"lora_target_modules": "c_attn"})
    assert estimate_for_run(gpt2, GPT2Config(n_layer=2, n_embd=64, n_head=4).to_dict()).params_trainable > 0


def test_a_laid_out_decoder_reads_the_same_from_its_config_dict():
    """config.json as written and config.to_dict() as the engine passes it give one shape."""
    from transformers import AutoConfig
    from vram_helpers import LAYOUTS

    from aios_tui.vram import shape_from_hf_config

    for name, cfg in LAYOUTS.items():
        loaded = shape_from_hf_config(AutoConfig.for_model(**cfg).to_dict(), name)
        assert loaded == shape_from_hf_config(cfg, name), name
