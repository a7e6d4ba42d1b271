"""What is being trained and how: everything the budget depends on besides the model's shape."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
METHODS = ("full", "lora", "adalora", "ia3")
LOSSES = ("hf", "plain", "chunked")


def adalora_start(target: int) -> int:
    """AdaLoRA's starting rank for a target rank when --adalora-init-r is not given."""
    from aios_tui.config.schema import PeftConfig

    return PeftConfig(lora_r=target).adalora_init_rank()


@dataclass(frozen=True)
class Setup:
    method: str = "full"                 # full | lora | adalora | ia3
    r: int = 16                          # LoRA rank; AdaLoRA's starting rank (init_r)
    target_r: int = 0                    # AdaLoRA's target rank (--lora-r) it prunes r down to; 0: none
    targets: tuple[str, ...] = ()
    dropout: float = 0.05                # adapter input dropout
    ia3_feedforward: tuple[str, ...] = ()
    modules_to_save: tuple[str, ...] = ()
    weights: str = "fp32"                # dtype the base weights are loaded in
    amp: bool = False                    # bf16 autocast around the forward
    quant: str | None = None             # None | "8bit" | "4bit"
    double_quant: bool = True            # 4-bit: quantize the absmax scales too
    grad_ckpt: bool = False              # non-reentrant checkpointing of every block
    optimizer: str = "adamw"             # adamw | adamw8bit
    paged: bool = True                   # 8-bit AdamW's big states in paged (managed) memory
    batch: int = 4
    seq: int = 128
    grad_accum: int = 1
    loss: str = "plain"                  # hf (model computes it, output kept) | plain | chunked
    chunk_bytes: int = 256 << 20         # chunked loss: fp32 logits per chunk at most
    attention: str = "sdpa"              # sdpa | eager | flash_attention_2
    device: str = "cuda"                 # cuda | cpu (dropout masks and attention kernels differ)
    input_requires_grad: bool | None = None  # embedding output requires grad (None: decide)
    # AdaLoRA's ranknum trained (None: as peft 0.21.2 does, i.e. on bf16/fp16 bases only;
    # peft 0.21.0 trained it always, which the calibration runs need)
    adalora_ranknum_grad: bool | None = None
    hrm_segments_in_graph: int | None = None  # ACT segments whose graph waits for one backward
    amp_extra: float | None = None       # override of the fitted autocast constant (calibration)
    # peft casts a LoRA layer's input to the adapter's fp32; the engine skips that under
    # autocast (engine.peft_setup.skips_lora_input_cast), stock peft does not
    lora_input_cast: bool = True
    fp8: bool = False                    # torchao Float8Linear for the base's nn.Linear layers
    compiled: bool = False               # torch.compile on CUDA: not modelled, only said

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def adalora_ranknum_trained(self) -> bool:
        """peft re-creates AdaLoRA's ranknum as a trainable fp32 parameter when it upcasts the
        adapter of a bf16/fp16 model (peft 0.21.2; before that, always), and ``/ ranknum``
        then keeps its [T, out] input for backward."""
        if self.adalora_ranknum_grad is not None:
            return self.adalora_ranknum_grad
        return self.weights in ("bf16", "fp16") and not self.quant

    @property
    def peft(self) -> bool:
        return self.method != "full"

    def with_(self, **kw: Any) -> "Setup":
        return replace(self, **kw)

    def label(self) -> str:
        bits = [self.method if self.method == "full" else f"{self.method}"
                + (f" r={self.r}" if self.method in ("lora", "adalora") else "")
                + (f"->{self.target_r}" if self.method == "adalora" and self.target_r else "")
                + (f" on {','.join(self.targets)}" if self.targets else "")]
        bits.append(f"{self.weights} weights" + (" + bf16 autocast" if self.amp else ""))
        if self.quant:
            bits.append(f"{self.quant} base")
        if self.grad_ckpt:
            bits.append("checkpointing")
        if self.fp8:
            bits.append("fp8 matmuls")
        if self.optimizer != "adamw":
            bits.append("8-bit AdamW")
        bits.append(f"batch {self.batch} x seq {self.seq}" + (f" x accum {self.grad_accum}" if self.grad_accum > 1 else ""))
        return ", ".join(bits)
