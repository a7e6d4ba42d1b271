"""Wrapping the base model in a peft adapter (LoRA, AdaLoRA, IA3), or freezing nothing (full).

Target modules are checked against the model before peft sees them: a name that matches no
module is an error listing the model's linear layers. Training never falls back to the full
model when an adapter was asked for.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from aios_tui.config import RunConfig
from aios_tui.config.targets import matches, own_names, with_own_targets
from aios_tui import notes
from aios_tui.errors import UserError, first_line
from aios_tui.quiet import quiet_library_warnings
from aios_tui.engine.models import linear_layer_names

ADAPTER_MARKERS = ("lora_", "ia3_", "modules_to_save")


def quiet_imports() -> None:
    """Keep library chatter out of the run's output: bitsandbytes warns about optional CPU
    kernels when peft imports it, and saving a model draws a progress bar per shard."""
    quiet_library_warnings()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def own_targets(model: nn.Module, cfg: RunConfig, model_name: str) -> RunConfig:
    """``cfg`` with Llama target names the model lacks put in its own (config/targets.py); the
    note saying so goes with the run's other notes."""
    names = [n for n, _ in model.named_modules() if n]
    cfg, note = with_own_targets(cfg, lambda t: any(matches(n, t) for n in names), model_name)
    if note:
        notes.say(note)
    return cfg


def unmatched_targets(model: nn.Module, targets: list[str]) -> list[str]:
    names = [n for n, _ in model.named_modules() if n]
    return [t for t in targets if not any(matches(n, t) for n in names)]


def target_error(model: nn.Module, missing: list[str], targets: list[str], model_name: str) -> UserError:
    linear = linear_layer_names(model)
    # heads are left out: an output head is frozen under PEFT and HRM's q_head always trains
    usable = [n for n in linear if n not in ("lm_head", "embed_out", "output", "q_head")]
    which = ", ".join(missing)
    lines = [f"peft.lora_target_modules: {which} {'matches' if len(missing) == 1 else 'match'} "
             f"no layer of {model_name}",
             f"its linear layers are: {', '.join(linear) if linear else '(none found)'}"]
    if usable:
        # AI-OS's advice is q,v for attention, in the model's own names where it calls them otherwise
        example, _ = own_names(["q_proj", "v_proj"], lambda t: not unmatched_targets(model, [t]))
        example = example if not unmatched_targets(model, example) else usable
        lines.append(f"for example: --lora-target-modules {','.join(example)}")
    if len(missing) < len(targets):
        lines.append(f"(matched: {', '.join(t for t in targets if t not in missing)}; "
                     "drop the names that match nothing)")
    return UserError(lines)


def check_targets(model: nn.Module, cfg: RunConfig, model_name: str | None = None,
                  always_trained: tuple[str, ...] | list[str] = ()) -> None:
    """Targets and modules_to_save against ``model``; ``always_trained`` are the modules the task
    trains in full beside any adapter (HRM's q_head)."""
    if not cfg.peft.use_peft:
        return
    targets = cfg.peft.target_list()
    missing = unmatched_targets(model, targets)
    if missing:
        raise target_error(model, missing, targets, model_name or cfg.model.model)
    extra_missing = unmatched_targets(model, cfg.peft.modules_to_save_list())
    if extra_missing:
        raise UserError(f"peft.modules_to_save: {', '.join(extra_missing)} match no module of "
                        f"{model_name or cfg.model.model}")
    in_full = [(n, True) for n in always_trained] + [(n, False) for n in cfg.peft.modules_to_save_list()]
    names = [n for n, _ in model.named_modules() if n]
    problems = []
    for target in targets:
        for saved, by_task in in_full:
            if any(matches(n, target) and matches(n, saved) for n in names):
                # peft skips such a target, or refuses the whole adapter when nothing else is left
                why = ("is trained in full beside the adapter" if by_task
                       else "is in modules_to_save, trained in full beside the adapter")
                problems.append(f"peft.lora_target_modules: {target} {why}, so it cannot also take an "
                                f"adapter; drop it from the targets")
                break
    if problems:
        raise UserError(problems)


def peft_config(cfg: RunConfig, total_steps: int, extras: dict[str, Any] | None = None):
    """The peft config object for ``cfg.peft`` (AdaLoRA's schedule from the run's length)."""
    quiet_imports()
    from peft import AdaLoraConfig, IA3Config, LoraConfig, TaskType

    p = cfg.peft
    kwargs: dict[str, Any] = {"target_modules": p.target_list(), "task_type": TaskType.CAUSAL_LM}
    if p.modules_to_save_list():
        kwargs["modules_to_save"] = p.modules_to_save_list()
    extras = dict(extras or {})
    if "modules_to_save" in extras:
        kwargs["modules_to_save"] = sorted(set(kwargs.get("modules_to_save", [])) | set(extras.pop("modules_to_save")))
    kwargs.update(extras)
    if p.peft_method == "lora":
        return LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout, **kwargs)
    if p.peft_method == "adalora":
        tinit, tfinal, delta = p.adalora_schedule(total_steps)
        return AdaLoraConfig(init_r=p.adalora_init_rank(), target_r=p.lora_r, lora_alpha=p.lora_alpha,
                             lora_dropout=p.lora_dropout, tinit=tinit, tfinal=tfinal, deltaT=delta,
                             total_step=total_steps, **kwargs)
    if p.peft_method == "ia3":
        return IA3Config(feedforward_modules=p.ia3_feedforward_list(), **kwargs)
    raise UserError(f"peft.peft_method: unknown method {p.peft_method!r}")


def apply_peft(model: nn.Module, cfg: RunConfig, total_steps: int, extras: dict[str, Any] | None = None,
               model_name: str | None = None) -> nn.Module:
    """The model wrapped in its adapter (or unchanged for full fine-tuning)."""
    if not cfg.peft.use_peft:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    check_targets(model, cfg, model_name, (extras or {}).get("modules_to_save", ()))
    config = peft_config(cfg, total_steps, extras)
    if hasattr(config, "fan_in_fan_out") and _targets_conv1d(model, cfg.peft.target_list()):
        config.fan_in_fan_out = True  # GPT-2's Conv1D stores its weight transposed
    from peft import get_peft_model

    try:
        wrapped = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        raise UserError(f"peft could not apply {cfg.peft.peft_method} to {model_name or cfg.model.model}: "
                        f"{first_line(exc)}") from None
    trainable, _ = parameter_counts(wrapped)
    if trainable == 0:
        raise UserError(f"peft: {cfg.peft.peft_method} on {', '.join(cfg.peft.target_list())} left nothing "
                        "to train; check lora_target_modules")
    from aios_tui.vram.run import skips_lora_input_cast

    if skips_lora_input_cast(cfg):
        skip_lora_input_casts(wrapped)
    return wrapped


def skip_lora_input_casts(model: nn.Module) -> int:
    """Turn off peft's input cast in every plain LoRA linear layer; how many.

    peft casts each adapter's input to the adapter's dtype (fp32 beside a bf16 base), which
    under autocast only goes back to bf16 for lora_A's matmul: a full-size fp32 copy per
    adapted layer for nothing, and a separate bf16 copy kept for backward by each of the
    layers that share one input (q, k and v). Under autocast the values are the same without
    it (``vram.run.skips_lora_input_cast`` says when the engine does this).
    """
    from peft.tuners.lora.layer import Linear as LoraLinear

    layers = [m for m in model.modules() if type(m) is LoraLinear]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)


def _targets_conv1d(model: nn.Module, targets: list[str]) -> bool:
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) and any(matches(n, t) for t in targets) for n, m in model.named_modules())


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, shared (tied) tensors counted once, adapters included."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        if type(p).__name__ == "Params4bit":  # packed two 4-bit values per byte
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def parameters_summary(model: nn.Module) -> dict[str, Any]:
    trainable, total = parameter_counts(model)
    return {"trainable": trainable, "total": total,
            "trainable_pct": round(100.0 * trainable / total, 4) if total else 0.0}


def is_adapter_param(name: str) -> bool:
    return any(m in name for m in ADAPTER_MARKERS)


def adalora_model(model: nn.Module):
    """The AdaLoRA tuner inside a PeftModel, or None."""
    tuner = getattr(model, "base_model", None)
    return tuner if type(tuner).__name__ == "AdaLoraModel" else None


def adalora_state(model: nn.Module) -> dict | None:
    """AdaLoRA's rank-allocator state for a checkpoint (None for other methods)."""
    tuner = adalora_model(model)
    if tuner is None:
        return None
    alloc = tuner.rankallocator
    config = tuner.peft_config[tuner.trainable_adapter_name]
    pattern = config.rank_pattern
    return {
        "ipt": {k: v.detach().cpu() for k, v in alloc.ipt.items()},
        "exp_avg_ipt": {k: v.detach().cpu() for k, v in alloc.exp_avg_ipt.items()},
        "exp_avg_unc": {k: v.detach().cpu() for k, v in alloc.exp_avg_unc.items()},
        # peft rewrites these keys when it saves the adapter, so keep a copy of its own
        "rank_pattern": {k: [bool(b) for b in v] for k, v in pattern.items()} if pattern else None,
    }


def restore_adalora(model: nn.Module, state: dict | None, device) -> None:
    tuner = adalora_model(model)
    if tuner is None or state is None:
        return
    alloc = tuner.rankallocator
    alloc.ipt = {k: v.to(device) for k, v in state["ipt"].items()}
    alloc.exp_avg_ipt = {k: v.to(device) for k, v in state["exp_avg_ipt"].items()}
    alloc.exp_avg_unc = {k: v.to(device) for k, v in state["exp_avg_unc"].items()}
    tuner.peft_config[tuner.trainable_adapter_name].rank_pattern = state["rank_pattern"]
