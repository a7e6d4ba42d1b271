"""The run configuration: one dataclass per concern, every field documented.

Field names are unique across sections, so a flat key (``lora_r = 8``) or a
command-line flag (``--lora-r 8``) names exactly one field. Ranges and choices
live in each field's metadata; validation and the CLI both read them from there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SEED_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
PEFT_METHODS = ("lora", "adalora", "ia3")
DTYPES = ("fp32", "bf16", "fp16")
MLP_MODULE_NAMES = ("gate_proj", "up_proj", "down_proj", "gate_up_proj", "c_fc", "fc_in", "fc_out", "fc1", "fc2",
                    "w1", "w2", "w3", "dense_h_to_4h", "dense_4h_to_h", "mlp.c_proj")


def fld(default: Any, help: str, *, choices: tuple | None = None, lo: float | None = None,
        hi: float | None = None, flag: str | None = None, metavar: str | None = None) -> Any:
    """A dataclass field carrying the facts that validation and the CLI need."""
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi, "flag": flag, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    model: str = fld("tiny", "Hugging Face model id, a local model directory, or 'tiny' (built in, no download)",
                     metavar="ID|DIR")
    model_dtype: str = fld("fp32", "dtype the base weights are loaded in", choices=DTYPES)
    attn_implementation: str = fld("sdpa", "attention kernel for Hugging Face models",
                                   choices=("sdpa", "eager", "flash_attention_2"))


@dataclass
class DataConfig:
    dataset_file: str = fld("", "text or JSONL ('text', 'prompt'/'completion', chat 'messages'); "
                                "local or hf://datasets/OWNER/NAME/FILE; empty: the sample",
                            metavar="PATH")
    max_seq_len: int = fld(128, "tokens per training block", lo=8, hi=131072)
    eval_fraction: float = fld(0.05, "share of blocks held out for eval loss", lo=0.0, hi=0.5)


@dataclass
class PeftConfig:
    use_peft: bool = fld(False, "train adapters instead of the full model")
    peft_method: str = fld("lora", "adapter type", choices=PEFT_METHODS)
    lora_r: int = fld(16, "adapter rank (LoRA; AdaLoRA's target rank)", lo=1, hi=256)
    lora_alpha: int = fld(32, "adapter scaling; the update is scaled by alpha/r", lo=1, hi=1024)
    lora_dropout: float = fld(0.05, "dropout on the adapter input", lo=0.0, hi=0.5)
    lora_target_modules: str = fld(SEED_TARGETS, "comma-separated modules to adapt; Llama's names fit other models",
                                   metavar="NAMES")
    adalora_init_r: int = fld(0, "AdaLoRA starting rank per module (0: 1.5 x lora_r)", lo=0, hi=512)
    adalora_tinit: int = fld(-1, "AdaLoRA warm-up steps before pruning (-1: 10% of steps)", lo=-1)
    adalora_tfinal: int = fld(-1, "AdaLoRA final fine-tuning steps at fixed rank (-1: 20% of steps)", lo=-1)
    adalora_delta_t: int = fld(0, "AdaLoRA steps between rank reallocations (0: derived)", lo=0)
    ia3_feedforward_modules: str = fld("", "IA3 feed-forward modules (empty: the MLP names among the targets)",
                                       metavar="NAMES")
    modules_to_save: str = fld("", "extra modules trained in full beside the adapter (comma-separated)",
                               metavar="NAMES")

    def target_list(self) -> list[str]:
        return [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]

    def modules_to_save_list(self) -> list[str]:
        return [m.strip() for m in self.modules_to_save.split(",") if m.strip()]

    def adalora_init_rank(self) -> int:
        return self.adalora_init_r or max(self.lora_r, round(self.lora_r * 1.5))

    def adalora_schedule(self, total_steps: int) -> tuple[int, int, int]:
        """(tinit, tfinal, deltaT) that always leave a pruning phase inside the run."""
        tinit = self.adalora_tinit if self.adalora_tinit >= 0 else int(total_steps * 0.1)
        tfinal = self.adalora_tfinal if self.adalora_tfinal >= 0 else int(total_steps * 0.2)
        if tinit + tfinal >= total_steps:  # peft refuses a schedule with no budgeting phase
            tinit, tfinal = 0, max(0, total_steps - 1) // 2
        delta = self.adalora_delta_t or max(1, (total_steps - tinit - tfinal) // 10)
        return tinit, tfinal, delta

    def ia3_feedforward_list(self) -> list[str]:
        if self.ia3_feedforward_modules.strip():
            return [m.strip() for m in self.ia3_feedforward_modules.split(",") if m.strip()]
        return [t for t in self.target_list() if t in MLP_MODULE_NAMES or t.endswith(("_ffn", "mlp"))]


@dataclass
class TrainConfig:
    steps: int = fld(200, "optimizer steps in the whole run", lo=1, hi=10**9)
    batch_size: int = fld(4, "sequences per micro-batch", lo=1, hi=4096)
    grad_accum: int = fld(1, "micro-batches per optimizer step", lo=1, hi=1024)
    lr: float = fld(0.0, "peak learning rate (0: 2e-4 LoRA, 1e-3 AdaLoRA, 3e-3 IA3, 5e-5 full)", lo=0.0, hi=1.0)
    lr_schedule: str = fld("cosine", "learning-rate decay after warm-up", choices=("cosine", "linear", "constant"))
    warmup_steps: int = fld(10, "linear warm-up steps (capped at a tenth of a short run)", lo=0)
    weight_decay: float = fld(0.0, "AdamW weight decay", lo=0.0, hi=1.0)
    max_grad_norm: float = fld(1.0, "gradient clipping norm (0: off)", lo=0.0)
    seed: int = fld(42, "seed for weights, data order and dropout", lo=0, hi=2**32 - 1)
    eval_every: int = fld(50, "steps between eval-loss passes (0: only at the last step)", lo=0)
    eval_batches: int = fld(8, "micro-batches per eval pass", lo=1)
    save_every: int = fld(100, "steps between checkpoints (0: only at the end and on stop)", lo=0)
    keep_last: int = fld(3, "checkpoints kept; older ones are deleted", lo=1)
    log_every: int = fld(1, "steps between metrics lines (the first step is always logged)", lo=1)
    run_name: str = fld("", "run name (empty: method and time)", metavar="NAME")
    run_dir: str = fld("", "run directory (empty: <run_name> under $AIOS_TUI_RUNS, else artifacts/runs)", metavar="DIR")
    log_file: str = fld("", "metrics JSONL path (empty: <run_dir>/metrics.jsonl)", metavar="PATH")
    device: str = fld("auto", "where to train", choices=("auto", "cuda", "cpu"))
    fused_loss: bool = fld(True, "chunked cross-entropy that never holds fp32 logits for the whole vocabulary")
    torch_compile: bool = fld(False, "torch.compile each decoder block (CUDA; the first steps wait for it)")
    fp8: bool = fld(False, "FP8 matmuls for the base's linear layers (torchao; Ada/Hopper GPUs; with --torch-compile)")

    def effective_warmup(self) -> int:
        """Warm-up never eats a short run: at most a tenth of its steps."""
        return min(self.warmup_steps, self.steps // 10)

    def effective_lr(self, peft: PeftConfig) -> float:
        if self.lr > 0:
            return self.lr
        if not peft.use_peft:
            return 5e-5
        # AdaLoRA's singular values start at zero and IA3's vectors at one: both move
        # far slower than LoRA at LoRA's rate.
        return {"ia3": 3e-3, "adalora": 1e-3}.get(peft.peft_method, 2e-4)


@dataclass
class MemoryConfig:
    amp: bool = fld(False, "mixed precision: bf16 autocast where supported, else fp16 with a grad scaler")
    gradient_checkpointing: bool = fld(False, "recompute activations in backward to save memory")
    use_8bit_optimizer: bool = fld(False, "bitsandbytes 8-bit AdamW (paged on CUDA; also runs on the CPU)")
    load_in_8bit: bool = fld(False, "load the frozen base weights in 8-bit (bitsandbytes; LoRA on top)")
    load_in_4bit: bool = fld(False, "load the frozen base weights in 4-bit NF4 with double quantisation (QLoRA; bitsandbytes)")


@dataclass
class HRMConfig:
    """HRM ACTv1 architecture and brain-bundle settings (used by ``train-actv1``)."""

    hidden_size: int = fld(512, "HRM hidden size", lo=8, hi=16384)
    num_heads: int = fld(8, "HRM attention heads", lo=1, hi=256)
    h_layers: int = fld(2, "blocks in the slow high-level module", lo=1, hi=64)
    l_layers: int = fld(2, "blocks in the fast low-level module", lo=1, hi=64)
    h_cycles: int = fld(2, "high-level updates per segment", lo=1, hi=16)
    l_cycles: int = fld(2, "low-level updates per high-level update", lo=1, hi=16)
    expansion: float = fld(2.0, "SwiGLU feed-forward expansion", lo=0.5, hi=16.0)
    halt_max_steps: int = fld(2, "most ACT segments per sequence (1: no pondering)", lo=1, hi=64)
    halt_exploration_prob: float = fld(0.1, "ACT exploration probability in training", lo=0.0, hi=1.0)
    lm_head_trainable: bool = fld(False, "train lm_head in full beside a PEFT adapter (q_head always is)")
    brain_name: str = fld("", "brain bundle name (empty: the run name)", metavar="NAME")
    bundle_dir: str = fld("artifacts/brains/actv1", "where brain bundles are written", metavar="DIR")
    student_init: str = fld("", "start from this brain bundle directory", metavar="BUNDLE")


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "peft": PeftConfig,
    "train": TrainConfig,
    "memory": MemoryConfig,
    "hrm": HRMConfig,
}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    hrm: HRMConfig = field(default_factory=HRMConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def method_label(self) -> str:
        """'lora', 'adalora', 'ia3' or 'full': what the run actually trains."""
        return self.peft.peft_method if self.peft.use_peft else "full"


def field_index() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every field name -> (section, field)."""
    out: dict[str, tuple[str, dataclasses.Field]] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name not in out, f"field {f.name} defined twice"
            out[f.name] = (section, f)
    return out


def field_type(f: dataclasses.Field) -> type:
    """The Python type of a field (annotations are strings under ``from __future__``)."""
    return {"int": int, "float": float, "bool": bool, "str": str}[str(f.type)]
