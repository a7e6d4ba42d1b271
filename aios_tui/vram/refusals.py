"""What `train` refuses before any weights load, worded once for the engine and the estimate.

The engine tells on the model built without weights (engine/quant.nothing_to_quantize,
engine/fp8.layers_problem, engine/models.positions_problem) and words its refusal here. The
estimate loads no torch: it knows each model type's linear layer class from its layout, the
positions from the config, and refuses the same settings with the same words, and never
suggests one of them.
"""

from __future__ import annotations

from typing import Iterable

from aios_tui.errors import UserError

# transformers 5's replace_with_bnb_linear swaps exactly these classes, not their subclasses
# (Falcon's FalconLinear stays in full precision)
QUANTIZED_LAYERS = frozenset({"Linear", "Conv1D"})
# torchao's Float8Linear takes plain nn.Linear only, both sizes multiples of 16 (engine/fp8.eligible)
FP8_LAYERS = frozenset({"Linear"})
FP8_MULTIPLE = 16
FP8 = "train.fp8"
HRM_ACTV1 = "hrm_actv1"


class Refused(UserError):
    """What a start would refuse too, found by the estimate: the console counts these as the
    form's problems, unlike what only the calculator cannot do."""


def quant_field(kind: str) -> str:
    return f"memory.load_in_{kind[0]}bit"


def quant_flag(kind: str) -> str:
    return f"--load-in-{kind[0]}bit"


def positions_problem(limit: int | None, max_seq_len: int) -> str | None:
    """Why blocks of ``max_seq_len`` tokens do not fit a model of ``limit`` positions
    (``config.max_position_embeddings``; None or 0: the model names no limit)."""
    if isinstance(limit, int) and 0 < limit < max_seq_len:
        return (f"data.max_seq_len: {max_seq_len} is longer than the model's {limit} positions; "
                f"use --max-seq-len {limit} or less")
    return None


def not_quantized(model: str, kind: str, layers: Iterable[str]) -> str:
    """The refusal of a quantized base none of whose ``layers`` (class names) gets quantized."""
    found = ", ".join(sorted(set(layers))) or "none"
    return (f"{quant_field(kind)}: {model} has no layer this transformers quantizes with bitsandbytes "
            f"(it quantizes plain nn.Linear and Conv1D layers; this model's are {found}); "
            f"train without {quant_flag(kind)}")


def quantized_other_task(kind: str, task_name: str) -> str:
    return (f"{quant_field(kind)}: quantized base weights apply to Hugging Face causal LMs (`aios-tui train`); "
            f"this model ({task_name}) trains in full precision; "
            f"drop {quant_flag(kind)} (--use-8bit-optimizer still saves optimizer memory)")


FP8_OTHER_TASK = f"{FP8}: FP8 matmuls are for Hugging Face causal LMs; HRM ACTv1 trains without them"
FP8_WITH_QUANT = (f"{FP8}: a quantized base (--load-in-8bit/--load-in-4bit) has no bf16 linear layers "
                  "to run in FP8; use one or the other")


def no_fp8_layers(model: str, foreign: Iterable[str] = ()) -> str:
    """The refusal of --fp8 on a model with no layer FP8 takes. ``foreign``: its linear layer
    classes when none is plain nn.Linear (empty: some are, but none has sizes FP8 takes)."""
    kinds = sorted(set(foreign))
    why = (f"its linear layers are {', '.join(kinds)}, not plain nn.Linear" if kinds
           else f"sizes must be multiples of {FP8_MULTIPLE}")
    return f"{FP8}: {model} has no linear layer FP8 can take ({why}); train without --fp8"


def setup_problems(shape, s, model: str) -> list[str]:
    """What ``train`` (or ``train-actv1``) refuses in setup ``s`` on ``shape``, named ``model``,
    that the config alone decides (vram.shape.ModelShape and vram.setup.Setup)."""
    hrm = shape.family == HRM_ACTV1
    # in the order `train --check` reports them: the model's positions, memory savers, FP8
    why = None if hrm else positions_problem(shape.position_limit, s.seq)
    out = [why] if why else []
    if s.quant and hrm:
        out.append(quantized_other_task(s.quant, HRM_ACTV1))
    elif s.quant and shape.layout.linear not in QUANTIZED_LAYERS:
        out.append(not_quantized(model, s.quant, [shape.layout.linear]))
    if s.fp8:
        # as engine/fp8.problems: the layers are looked at only when nothing else stands in the way
        first = [p for p, bad in ((FP8_OTHER_TASK, hrm), (FP8_WITH_QUANT, s.quant)) if bad]
        if first:
            out += first
        elif shape.layout.linear not in FP8_LAYERS:
            out.append(no_fp8_layers(model, [shape.layout.linear]))
        elif not any(lin.fan_in % FP8_MULTIPLE == 0 and lin.fan_out % FP8_MULTIPLE == 0
                     for lin in shape.block_linears() + shape.outer_linears()):
            out.append(no_fp8_layers(model))
    return out
