"""Exact parameter counts and the bytes they occupy: base weights (plain or quantized),
adapters, gradients and optimizer states.

Counts follow what peft builds: LoRA adds A [r, in] and B [out, r]; AdaLoRA adds A [r, in],
E [r, 1], B [out, r] and a one-element ``ranknum`` that is not trained; IA3 adds one vector,
[in] for feed-forward targets and [out] otherwise; ``modules_to_save`` trains a copy of each
named module beside its frozen original.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aios_tui.config.targets import matches
from aios_tui.errors import UserError
from aios_tui.vram.setup import DTYPE_BYTES, Setup
from aios_tui.vram.shape import HRM, Linear, ModelShape

ADAPTER_BYTES = 4          # peft keeps adapter weights in fp32 even on a bf16 base
BNB_MIN_8BIT_SIZE = 4096   # bitsandbytes: smaller tensors keep 32-bit optimizer state
BNB_STATE_BLOCK = 256      # blockwise 8-bit optimizer state: one fp32 absmax per block
BNB_PAGED_MIN = 100_000    # bitsandbytes pages state buffers of at least this many elements
NF4_BLOCK = 64             # 4-bit weights: one absmax per 64 values
NESTED_BLOCK = 256         # double quantisation: one fp32 scale per 256 absmax values
ALLOC_BLOCK = 512          # the CUDA caching allocator's smallest block


def ia3_feedforward(names: tuple[str, ...], qualified: str) -> bool:
    """peft's IA3 rule: a target is feed-forward when its path ends with one of the names (no
    dot needed), and then its vector scales the layer's input, not its output."""
    return any(qualified.endswith(n) for n in names)


@dataclass
class LinearPlan:
    """One block linear and what training does to it."""

    lin: Linear
    adapter: str | None = None   # lora | adalora | ia3 | None
    ia3_ff: bool = False
    trainable: bool = False      # the base weight itself is trained (full, modules_to_save)
    quantized: str | None = None  # 8bit | 4bit | None

    @property
    def params(self) -> int:
        return self.lin.fan_in * self.lin.fan_out


@dataclass
class Plan:
    """The per-block linears with their treatment, plus head/embedding treatment."""

    linears: list[LinearPlan]
    outer: list[LinearPlan] = field(default_factory=list)   # once per model (shape.outer_linears)
    head_adapter: str | None = None    # adapter on lm_head
    head_trainable: bool = False       # lm_head (or a trained copy of it) receives gradients
    embed_trainable: bool = False
    norms_trainable: bool = False
    q_head_trainable: bool = False     # HRM's halting head
    # modules_to_save: name -> the tensors copied, as (elements, how many)
    copies: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def outer_reading(self, reads: str) -> LinearPlan | None:
        return next((lp for lp in self.outer if lp.lin.reads == reads), None)

    def all_linears(self, layers: int) -> list[tuple[LinearPlan, int]]:
        """Every base linear layer and how many of it the model has."""
        return [(lp, layers) for lp in self.linears] + [(lp, 1) for lp in self.outer]


def resolve_plan(shape: ModelShape, s: Setup) -> Plan:
    """Which modules get which adapter; unknown target names are a UserError."""
    full = s.method == "full"
    targets = list(s.targets) if s.peft else []
    leafs = shape.linear_names()
    used: set[str] = set()

    def planned(lin: Linear) -> LinearPlan:
        hit = [t for t in targets if matches(lin.qualified, t)]
        used.update(hit)
        lp = LinearPlan(lin, trainable=full, quantized=s.quant if s.quant else None)
        if hit:
            lp.adapter = s.method
            lp.ia3_ff = s.method == "ia3" and ia3_feedforward(s.ia3_feedforward, lin.qualified)
        return lp

    plans = [planned(lin) for lin in shape.block_linears()]
    plan = Plan(plans, [planned(lin) for lin in shape.outer_linears()], embed_trainable=full,
                norms_trainable=full, head_trainable=full)
    head = shape.head_name
    if head in targets:
        used.add(head)
        plan.head_adapter = s.method
    if shape.family == HRM:
        if "q_head" in targets:
            used.add("q_head")
        plan.q_head_trainable = True
    for name in s.modules_to_save if s.peft else ():
        if name == head:
            plan.head_trainable = True
            plan.copies[head] = [(shape.vocab * shape.embed_width, 1)] + ([(shape.vocab, 1)] if shape.head_bias else [])
        elif name == "q_head" and shape.family == HRM:
            plan.copies["q_head"] = [(2 * shape.hidden + 2, 1)]
        elif name == shape.embed_name:
            plan.embed_trainable = True
            plan.copies[name] = [(shape.vocab * shape.embed_width, 1)]
        else:
            found = [(lp, k) for lp, k in plan.all_linears(shape.layers) if matches(lp.lin.qualified, name)]
            if not found:
                raise UserError(f"peft.modules_to_save: {name} is not a module of {shape.name or shape.model_type}",
                                f"its modules that can be saved are: {', '.join([*leafs, shape.embed_name])}")
            for lp, _ in found:
                lp.trainable = True
            plan.copies[name] = [(n, k) for lp, k in found
                                 for n in (lp.params, lp.lin.fan_out if lp.lin.bias else 0) if n]
    if shape.family == HRM and s.peft:
        plan.copies.setdefault("q_head", [(2 * shape.hidden + 2, 1)])
    example = f"for example: --lora-target-modules {','.join(shape.suggested_targets())}"
    missing = [t for t in targets if t not in used]
    if missing:
        raise UserError(f"peft.lora_target_modules: {', '.join(missing)} "
                        f"{'matches' if len(missing) == 1 else 'match'} no layer of {shape.name or shape.model_type}",
                        f"its linear layers are: {', '.join(leafs)}", example)
    if s.peft and not any(lp.adapter for lp, _ in plan.all_linears(1)) and not plan.head_adapter and not plan.copies:
        raise UserError("peft.lora_target_modules: no target given; name the layers to adapt", example)
    return plan


def adapter_tensors(lin: Linear, method: str, r: int, ia3_ff: bool) -> list[int]:
    """Element counts of the trainable tensors peft adds to one linear layer."""
    if method == "lora":
        return [r * lin.fan_in, lin.fan_out * r]
    if method == "adalora":
        return [r * lin.fan_in, r, lin.fan_out * r]
    if method == "ia3":
        return [lin.fan_in if ia3_ff else lin.fan_out]
    return []


@dataclass
class Counts:
    total: int            # every parameter of the wrapped model, as sum(p.numel()) counts them
    trainable: int
    base: int             # the base model alone
    adapter: int          # adapter tensors and modules_to_save copies
    # trainable tensors as (elements, dtype bytes, how many such tensors)
    trainable_tensors: list[tuple[int, int, int]] = field(default_factory=list)
    # elements of each trained embedding table (also in trainable_tensors): 8-bit AdamW keeps
    # 32-bit state for them, as bitsandbytes advises and the engine does
    embedding_tables: list[int] = field(default_factory=list)

    @property
    def tensor_count(self) -> int:
        return sum(k for _, _, k in self.trainable_tensors)


def count_params(shape: ModelShape, s: Setup, plan: Plan | None = None) -> Counts:
    plan = plan or resolve_plan(shape, s)
    base = shape.param_count()
    wb = DTYPE_BYTES[s.weights]
    pb = 4 if s.quant else wb            # k-bit preparation keeps every non-quantized tensor in fp32
    tensors: list[tuple[int, int, int]] = []
    adapter = 0
    extra_total = 0
    L = shape.layers
    embeddings: list[int] = []
    for lp, k in plan.all_linears(L):
        if lp.adapter:
            for n in adapter_tensors(lp.lin, s.method, s.r, lp.ia3_ff):
                tensors.append((n, ADAPTER_BYTES, k))
                adapter += n * k
            if s.method == "adalora":
                if s.adalora_ranknum_trained:
                    tensors.append((1, ADAPTER_BYTES, k))
                    adapter += k
                else:
                    extra_total += k   # ranknum, one element, not trained
    if plan.head_adapter:
        head = Linear(shape.head_name, shape.embed_width, shape.vocab, False, "head")
        for n in adapter_tensors(head, s.method, s.r, False):
            tensors.append((n, ADAPTER_BYTES, 1))
            adapter += n
        if s.method == "adalora":
            extra_total += 1
    for copied in plan.copies.values():
        tensors += [(n, pb, k) for n, k in copied]
        adapter += sum(n * k for n, k in copied)
    if s.method == "full":
        h, e = shape.hidden, shape.embed_width
        for lp, k in plan.all_linears(L):
            tensors.append((lp.params, wb, k))
            if lp.lin.bias:
                tensors.append((lp.lin.fan_out, wb, k))
        tensors += [(n, wb, k * L) for n, k in shape.block_norm_tensors()]
        tensors.append((shape.vocab * e, wb, 1))
        embeddings = [shape.vocab * e]
        if shape.learned_positions:
            tensors.append((shape.position_rows * h, wb, 1))
            embeddings.append(shape.position_rows * h)
        tensors += [(n, wb, k) for n, k in shape.final_norm_tensors()]
        if not shape.tied:
            tensors.append((shape.vocab * e, wb, 1))
        if shape.head_bias:
            tensors.append((shape.vocab, wb, 1))
        if shape.family == HRM:
            tensors += [(2 * h, wb, 1), (2, wb, 1)]
    trainable = sum(n * k for n, _, k in tensors)
    return Counts(total=base + adapter + extra_total, trainable=trainable, base=base, adapter=adapter,
                  trainable_tensors=tensors, embedding_tables=embeddings if s.method == "full" else [])


def quantized_linear_bytes(lp: LinearPlan, s: Setup) -> int:
    """Device bytes of one quantized linear's weight and its scales (bias excluded)."""
    n, out = lp.params, lp.lin.fan_out
    if lp.quantized == "8bit":
        return n + 4 * out                      # int8 weight + one fp32 scale per output row
    blocks = -(-n // NF4_BLOCK)
    packed = -(-n // 2)                         # two 4-bit codes per byte
    code = 16 * 4                               # the NF4 code book, one per weight
    if s.double_quant:
        # The 8-bit scales carry a 256-entry fp32 code book of their own, one per layer.
        return packed + blocks + 4 * -(-blocks // NESTED_BLOCK) + 4 + code + 256 * 4
    return packed + 4 * blocks + code


def weight_bytes(shape: ModelShape, s: Setup, plan: Plan, counts: Counts) -> tuple[int, int]:
    """(base weight bytes, adapter bytes) on the device."""
    wb = DTYPE_BYTES[s.weights]
    pb = 4 if s.quant else wb
    L = shape.layers
    if s.quant:
        lin_bytes = 0
        other = shape.param_count()
        # bitsandbytes converts OPT's project_in/project_out too (transformers keeps out only the
        # head, the tied embedding and the module of the last parameter, a norm)
        for lp, k in plan.all_linears(L):
            lin_bytes += quantized_linear_bytes(lp, s) * k
            other -= lp.params * k
        base = lin_bytes + other * pb
    else:
        base = shape.param_count() * wb
    adapter = 0
    for n, b, k in counts.trainable_tensors if s.peft else ():
        adapter += n * b * k
    if s.method == "adalora":
        adapter += 4 * (counts.total - counts.base - counts.adapter)   # ranknum scalars
    return base, adapter


def optimizer_bytes(s: Setup, counts: Counts) -> tuple[int, int]:
    """(bytes the caching allocator holds, bytes in paged memory outside it)."""
    alloc = paged = 0
    if s.optimizer == "adamw8bit":
        alloc += 2 * 256 * 4   # the two quantisation maps
        embeddings = list(counts.embedding_tables)
        for n, _, k in counts.trainable_tensors:
            if k == 1 and n in embeddings:
                embeddings.remove(n)
                states, absmax = 8 * n, 0
            elif n < BNB_MIN_8BIT_SIZE:
                states, absmax = 8 * n, 0
            else:
                states, absmax = 2 * n, 2 * 4 * -(-n // BNB_STATE_BLOCK)
            if s.paged and s.device == "cuda" and n >= BNB_PAGED_MIN:
                paged += states * k
            else:
                alloc += states * k
            alloc += absmax * k
    else:
        for n, b, k in counts.trainable_tensors:
            alloc += 2 * n * b * k    # torch AdamW keeps exp_avg and exp_avg_sq in the param's dtype
            if s.device == "cuda":
                alloc += ALLOC_BLOCK * k  # fused AdamW's per-tensor step counter on the device
    if s.method == "adalora":
        # the rank allocator's importance scores: ipt, exp_avg_ipt, exp_avg_unc, fp32
        alloc += 3 * 4 * counts.trainable
    return alloc, paged


def gradient_bytes(counts: Counts) -> int:
    return sum(n * b * k for n, b, k in counts.trainable_tensors)
