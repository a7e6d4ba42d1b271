"""Target module names across architectures.

The default targets and the presets name Llama's projections (q_proj ... down_proj), as AI-OS
does. Other decoders call the same layers otherwise, or fuse them: GPT-2 computes q, k and v in
one ``c_attn``, Phi-3 in one ``qkv_proj``. A Llama name that matches no module of the model is
replaced by the model's own layer in that role, so a preset means the same thing on any model;
the run says so and records the names it really used. Names the model has are never touched.
"""

from __future__ import annotations

from typing import Callable

_QKV = ("qkv_proj", "query_key_value", "c_attn", "Wqkv")
_GATE_UP = ("gate_up_proj", "dense_h_to_4h", "c_fc", "fc1", "fc_in", "w1")

# Candidates in order; the first the model has wins. Dotted names pick one of two layers that
# share a leaf name (GPT-2's attn.c_proj and mlp.c_proj), as peft matches a dotted tail.
EQUIVALENTS: dict[str, tuple[str, ...]] = {
    "q_proj": _QKV,
    "k_proj": _QKV,
    "v_proj": _QKV,
    "o_proj": ("out_proj", "attention.dense", "self_attention.dense", "self_attn.dense", "attn.c_proj", "dense"),
    "gate_proj": (*_GATE_UP, "up_proj"),   # a plain MLP's one input layer (MPT calls it up_proj)
    "up_proj": _GATE_UP,
    "down_proj": ("dense_4h_to_h", "mlp.c_proj", "fc2", "fc_out", "w2"),
}


def matches(module_name: str, target: str) -> bool:
    """peft's rule for a plain target name: the full name or its dotted tail."""
    return module_name == target or module_name.endswith("." + target)


def own_names(targets: list[str], has: Callable[[str], bool]) -> tuple[list[str], dict[str, str]]:
    """``targets`` with each Llama name the model lacks replaced by its own layer in that role.

    ``has(name)`` says whether a target name matches a module. Returns the new list (in order,
    without repeats) and what was replaced ({llama name: own name}); a name with no equivalent
    is kept, for the target check to report.
    """
    out: list[str] = []
    replaced: dict[str, str] = {}
    for name in targets:
        own = name
        if not has(name):
            own = next((c for c in EQUIVALENTS.get(name, ()) if has(c)), name)
            if own != name:
                replaced[name] = own
        if own not in out:
            out.append(own)
    return out, replaced


def replaced_note(model: str, replaced: dict[str, str]) -> str:
    """One line saying which names were replaced by which, grouped by the layer they became."""
    by_own: dict[str, list[str]] = {}
    for llama, own in replaced.items():
        by_own.setdefault(own, []).append(llama)
    pairs = ", ".join(f"{'/'.join(names)} -> {own}" for own, names in by_own.items())
    return (f"{model} has its own names for these layers, adapted in their place: {pairs} "
            "(--lora-target-modules names them directly)")


def with_own_targets(cfg, has: Callable[[str], bool], model: str):
    """(``cfg`` with its targets in the model's own names, a note saying so or None)."""
    import dataclasses

    p = cfg.peft
    if not p.use_peft:
        return cfg, None
    targets, replaced = own_names(p.target_list(), has)
    if not replaced:
        return cfg, None
    changes = {"lora_target_modules": ",".join(targets)}
    if p.ia3_feedforward_modules.strip():
        # an explicit feed-forward list names targets, so it follows them
        ff = list(dict.fromkeys(replaced.get(m, m) for m in p.ia3_feedforward_list()))
        changes["ia3_feedforward_modules"] = ",".join(ff)
    return dataclasses.replace(cfg, peft=dataclasses.replace(p, **changes)), replaced_note(model, replaced)
