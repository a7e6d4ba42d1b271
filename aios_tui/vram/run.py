"""From a RunConfig to the estimate: the settings the engine will actually use."""

from __future__ import annotations

from typing import Any, Mapping

from aios_tui.config.targets import with_own_targets
from aios_tui.vram.estimate import Estimate, estimate
from aios_tui.vram.refusals import Refused, setup_problems
from aios_tui.vram.setup import Setup
from aios_tui.vram.shape import HRM, ModelShape, shape_from_hf_config, shape_from_model_arg


def hrm_model_config(cfg: Any, vocab_size: int) -> dict:
    """The HRM ACTv1 config dict for ``cfg.hrm`` and a tokenizer's vocabulary size."""
    h = cfg.hrm
    return {"model_type": HRM, "hidden_size": h.hidden_size, "num_heads": h.num_heads,
            "h_layers": h.h_layers, "l_layers": h.l_layers, "h_cycles": h.h_cycles,
            "l_cycles": h.l_cycles, "expansion": h.expansion, "vocab_size": vocab_size,
            "max_seq_len": cfg.data.max_seq_len, "halt_max_steps": h.halt_max_steps}


def skips_lora_input_cast(cfg: Any) -> bool:
    """Whether the engine turns off peft's fp32 cast of LoRA inputs: plain LoRA under autocast,
    base not quantized (engine.peft_setup.skip_lora_input_casts)."""
    m = cfg.memory
    return bool(cfg.peft.use_peft and cfg.peft.peft_method == "lora" and m.amp
                and not (m.load_in_8bit or m.load_in_4bit))


def setup_from_config(cfg: Any, shape: ModelShape) -> Setup:
    """The engine's choices for ``cfg``: what it loads, wraps, checkpoints and optimises."""
    p, m, t = cfg.peft, cfg.memory, cfg.train
    method = cfg.method_label()
    r = p.adalora_init_rank() if method == "adalora" else p.lora_r
    modules_to_save = list(p.modules_to_save_list()) if p.use_peft else []
    targets = tuple(p.target_list()) if p.use_peft else ()
    if shape.family == HRM and p.use_peft:
        # the HRM task always trains q_head in full, and lm_head when asked to
        modules_to_save += ["q_head"] + (["lm_head"] if cfg.hrm.lm_head_trainable else [])
    quant = "4bit" if m.load_in_4bit else "8bit" if m.load_in_8bit else None
    adapted_head = shape.head_name in targets or shape.head_name in modules_to_save
    fused_ok = shape.fused_loss_applies and not adapted_head
    loss = "chunked" if t.fused_loss and fused_ok else "plain"
    device = "cpu" if t.device == "cpu" else "cuda"
    return Setup(
        method=method, r=r, target_r=p.lora_r if method == "adalora" else 0, targets=targets, dropout=p.lora_dropout,
        ia3_feedforward=tuple(p.ia3_feedforward_list()) if method == "ia3" else (),
        modules_to_save=tuple(dict.fromkeys(modules_to_save)), weights=cfg.model.model_dtype,
        amp=m.amp, quant=quant, grad_ckpt=m.gradient_checkpointing,
        optimizer="adamw8bit" if m.use_8bit_optimizer else "adamw",
        batch=t.batch_size, seq=cfg.data.max_seq_len, grad_accum=t.grad_accum, loss=loss,
        attention=cfg.model.attn_implementation, device=device,
        lora_input_cast=not skips_lora_input_cast(cfg), fp8=t.fp8,
        compiled=bool(t.torch_compile) and device == "cuda",
        # the engine makes the embedding output require grad when checkpointing an adapter
        input_requires_grad=(method == "full") or (p.use_peft and m.gradient_checkpointing))


def shape_for_run(cfg: Any, model_config: Mapping[str, Any] | None = None) -> ModelShape:
    if model_config is not None:
        return shape_from_hf_config(model_config, str(model_config.get("_name_or_path") or cfg.model.model))
    return shape_from_model_arg(cfg.model.model)


def estimate_for_run(cfg: Any, model_config: Mapping[str, Any] | None = None,
                     gpu_memory_bytes: int | None = None, *, gpu_label: str | None = None,
                     suggestions: bool = True) -> Estimate:
    """The VRAM estimate for a run configuration.

    ``model_config`` is a Hugging Face config dict or the HRM ACTv1 dict; None resolves
    ``cfg.model.model`` (``tiny``, a directory with config.json, or a built-in model id).
    """
    shape = shape_for_run(cfg, model_config)
    # as the engine does: Llama names the model lacks stand for its own layers in that role
    cfg, note = with_own_targets(cfg, shape.has_module, shape.name or shape.model_type)
    setup = setup_from_config(cfg, shape)
    # worded as `train` words them, with the model as it was named
    refused = setup_problems(shape, setup, cfg.model.model)
    if refused:
        raise Refused(refused)
    est = estimate(shape, setup, gpu_memory_bytes, gpu_label, suggestions)
    if note:
        est.assumptions.insert(0, note)
    return est
