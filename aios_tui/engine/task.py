"""What the training loop needs from a model family: the ``Task`` protocol.

The loop in ``train.py`` knows nothing about any architecture. It asks a ``Task`` to:

``preflight(cfg)``
    Cheap checks before anything is created or loaded (raise ``UserError``).
``build(cfg, device) -> (model, tokenizer)``
    The base model on ``device``, before PEFT, and its tokenizer. ``cfg.model.model`` may name
    a directory the engine saved earlier (the run's ``base/``; see ``save_base``).
``enable_gradient_checkpointing(model, peft)``
    Turn on activation recomputation (called before PEFT is applied).
``compile(model)``
    ``torch.compile`` in place what ``loss`` runs (``train.torch_compile``, CUDA only).
``peft_extras(cfg) -> dict``
    Extra keyword arguments for the peft config, e.g. ``{"modules_to_save": ["q_head"]}`` or
    ``{"task_type": None}`` for a model that is not a Hugging Face causal LM.
``load_data(cfg, tokenizer) -> data.PackedData``
    Tokenised, packed train and eval blocks (default: ``data.load_packed``).
``loss(model, batch, step) -> LossOutput``
    The loss to backpropagate for one micro-batch (its mean over the micro-batch's tokens),
    the token count, the value to report as ``loss`` and extra per-step metrics. ``batch`` is a
    dict from ``data.make_batch`` already on the device; ``step`` counts optimizer steps
    from 0. The loop weights each micro-batch by ``batch_weight`` and backpropagates once per
    micro-batch, so a loss that is a mean over tokens gives the exact token mean over the step.
``batch_weight(batch) -> int``
    How much a micro-batch counts (tokens carrying loss), computed on the CPU without a sync.
``eval_loss(model, batch) -> (loss, weight)``
    Called under ``torch.no_grad`` with the model in eval mode.
``model_config_dict(model) -> dict | None``
    The config handed to the VRAM estimate (a Hugging Face ``config.to_dict()`` or HRM dict).
``save_base(model, tokenizer, cfg, dest) -> bool``
    Save a base model that cannot be re-read from ``cfg.model.model`` (the built-in ``tiny``),
    so exports and resumes use the very same weights. Return True when saved.
``save_artifacts(model, tokenizer, cfg, checkpoint_dir)`` / ``on_finish(model, tokenizer, cfg, run_dir)``
    Extra files per checkpoint and at the end (e.g. a brain bundle).
``state_dict()`` / ``load_state_dict(state)``
    Task-owned training state for exact resume; only tensors and plain Python values (it is
    loaded with ``torch.load(weights_only=True)``).
``generate(model, tokenizer, prompt, max_new_tokens, temperature, top_k, seed) -> str``
    Sample a continuation (used by ``aios-tui generate``).

A task is recorded in the run as ``"module:Class"`` (``task_spec``) and rebuilt with
``load_task`` for resume, export and generate, so a subclass must construct with no arguments.
``CausalLMTask`` serves every Hugging Face causal LM and the built-in ``tiny``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aios_tui.config import RunConfig
from aios_tui.engine.models import save_tokenizer
from aios_tui.errors import UserError


@dataclass
class LossOutput:
    loss: Tensor                         # what is backpropagated: a mean over this micro-batch
    n_tokens: Tensor | int               # tokens that carried loss
    report: Tensor | None = None         # what the metrics call "loss" (default: ``loss``)
    metrics: dict[str, Any] = field(default_factory=dict)  # extra per-step values (tensors or numbers)


class Task:
    """Base class: a Hugging Face-style causal LM trained on packed text. See the module docstring."""

    name = "base"
    command = "train"  # the subcommand that resumes a run of this task
    quantized_base = False  # whether build() honours --load-in-8bit/--load-in-4bit

    def preflight(self, cfg: RunConfig) -> None:
        return None

    def describe_model(self, cfg: RunConfig) -> str:
        """What is trained, in the run's first line."""
        return cfg.model.model

    def build(self, cfg: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        raise NotImplementedError

    def enable_gradient_checkpointing(self, model: nn.Module, peft: bool) -> None:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if peft:
            # Frozen embeddings give checkpointed blocks inputs without grad; this hook makes
            # sure the adapters inside them still get gradients.
            model.enable_input_require_grads()

    def peft_extras(self, cfg: RunConfig) -> dict[str, Any]:
        return {}

    def compile(self, model: nn.Module) -> None:
        """torch.compile what ``loss`` runs, in place (state-dict names stay as they are)."""
        compile_blocks(model)

    def load_data(self, cfg: RunConfig, tokenizer: Any):
        from aios_tui.engine.data import load_packed

        return load_packed(cfg, tokenizer)

    def batch_weight(self, batch: dict) -> int:
        return int(batch["n_targets"])

    def loss(self, model: nn.Module, batch: dict, step: int) -> LossOutput:
        raise NotImplementedError

    def eval_loss(self, model: nn.Module, batch: dict) -> tuple[Tensor, int]:
        out = self.loss(model, batch, -1)
        return (out.report if out.report is not None else out.loss), self.batch_weight(batch)

    def model_config_dict(self, model: nn.Module) -> dict | None:
        from aios_tui.engine.loss import unwrap

        config = getattr(unwrap(model), "config", None)
        return config.to_dict() if config is not None and hasattr(config, "to_dict") else None

    def save_base(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, dest: Path) -> bool:
        return False

    def save_artifacts(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, checkpoint_dir: Path) -> None:
        return None

    def on_finish(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, run_dir: Path) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class CausalLMTask(Task):
    """Any Hugging Face causal LM (hub id or local directory) and the built-in ``tiny``."""

    name = "causal_lm"
    quantized_base = True  # --load-in-8bit/--load-in-4bit apply (engine/quant.py)

    def __init__(self) -> None:
        self.fused = False  # train.fused_loss, taken from the config in build()
        self._adalora: tuple[float, list] | None = None

    def preflight(self, cfg: RunConfig) -> None:
        from aios_tui.engine.models import causal_lm_problem, model_source_problem, positions_problem, read_config

        problem = model_source_problem(cfg.model.model)
        if problem:
            raise UserError(problem)
        # Found here too, not only once the weights are in: --check and --detach must refuse it.
        config = read_config(cfg.model.model)
        if config is not None:
            problem = (causal_lm_problem(config, cfg.model.model)
                       or positions_problem(config, cfg.data.max_seq_len))
        if problem:
            raise UserError(problem)

    def build(self, cfg: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        from aios_tui.engine.models import build_causal_lm, positions_problem
        from aios_tui.engine.tokenizer import vocab_problem

        self.fused = cfg.train.fused_loss
        model, tokenizer = build_causal_lm(cfg)
        # a Hub model's tokenizer is only seen here (a local one's in preflight.tokenizer_problems)
        problem = (positions_problem(model.config, cfg.data.max_seq_len)
                   or vocab_problem(tokenizer, model.get_input_embeddings().num_embeddings, cfg.model.model))
        if problem:
            raise UserError(problem)
        if getattr(model, "hf_quantizer", None) is not None or getattr(model.config, "quantization_config", None):
            # device_map already placed it; older bitsandbytes refuse .to() on 8-bit models
            return model, tokenizer
        return model.to(device), tokenizer

    def loss(self, model: nn.Module, batch: dict, step: int) -> LossOutput:
        from aios_tui.engine.loss import adalora_orth_penalty, adalora_penalty_params, causal_lm_loss

        lm, n = causal_lm_loss(model, batch["input_ids"], batch["labels"], fused=self.fused)
        if not model.training or not hasattr(model, "peft_config"):
            return LossOutput(lm, n)
        if self._adalora is None:
            is_adalora = any(type(c).__name__ == "AdaLoraConfig" for c in model.peft_config.values())
            self._adalora = adalora_penalty_params(model) if is_adalora else (0.0, [])
        penalty = adalora_orth_penalty(*self._adalora)
        if penalty is None:
            return LossOutput(lm, n)
        return LossOutput(lm + penalty, n, report=lm, metrics={"orth_reg": penalty.detach()})

    def compile(self, model: nn.Module) -> None:
        from aios_tui.engine.loss import fused_parts

        # The fused loss calls the decoder directly, so that is the module to compile.
        parts = fused_parts(model) if self.fused else None
        compile_blocks(parts[0] if parts else model, like=model)

    def save_base(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, dest: Path) -> bool:
        if cfg.model.model != "tiny":
            return False
        if cfg.memory.load_in_8bit or cfg.memory.load_in_4bit:
            from aios_tui.engine.quant import full_precision_tiny

            # the weights before quantization: resume quantizes them again, a merge goes into them
            model = full_precision_tiny(cfg)
        model.save_pretrained(dest)
        save_tokenizer(tokenizer, dest)
        return True


def compile_blocks(module: nn.Module, like: nn.Module | None = None) -> int:
    """torch.compile each repeated block of ``module`` in place; the number compiled.

    The blocks are the classes the model names in ``_no_split_modules`` (a decoder layer).
    Compiling one block's code serves every layer, so the first step waits for one block's
    compilation rather than the whole unrolled stack's (on a 12-layer model, 15 s instead of
    52 s on a CPU), and the steps after run as fast. A model that names no blocks is compiled
    whole. ``like`` is the model to read the block names from, when ``module`` is a part of it.
    """
    from aios_tui.engine.loss import unwrap

    import torch._dynamo

    names = set(getattr(unwrap(like if like is not None else module), "_no_split_modules", None) or ())
    blocks = [m for m in module.modules() if type(m).__name__ in names]
    # A block whose forward reads a per-layer number compiles once per layer; past dynamo's
    # limit (8) the other layers would quietly run uncompiled.
    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, limit, max(getattr(config, limit), len(blocks) + 8))
    for block in blocks:
        block.compile()
    if not blocks:
        module.compile()
    return len(blocks)


def task_spec(task: Task) -> str:
    cls = type(task)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_task(spec: str | None) -> Task:
    """The task recorded in a run; only classes inside this package are ever imported."""
    if not spec or spec == task_spec(CausalLMTask()):
        return CausalLMTask()
    module_name, _, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not module_name.startswith("aios_tui.") or not attr:
        raise UserError(f"unknown task {spec!r} recorded in the run")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"the run was trained with {spec}, which this aios-tui cannot load ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise UserError(f"{spec} is not a training task")
    return cls()
