"""The HRM ACTv1 training task: how the engine's loop builds, trains and saves the model.

- ``cfg.model.model`` names the tokenizer (``tiny`` is the byte-level one; a Hugging Face id
  or directory otherwise); the model itself is built from ``cfg.hrm`` with the run's seed,
  or loaded from ``cfg.hrm.student_init`` (a brain bundle, its adapter merged in).
- ``q_head`` is always trained beside a PEFT adapter; ``lm_head`` only with
  ``hrm.lm_head_trainable`` (with a 50K vocabulary a trainable lm_head alone is a large share
  of the model, see the README).
- The reported ``loss`` is the next-token loss of the segment each sequence halted at, the
  prediction the model actually makes, so it compares with ``eval_loss``; ``objective`` is
  what is backpropagated (deep supervision over segments plus the halting losses).
- At the end of a session the model goes to a brain bundle (``hrm.bundle_dir`` /
  ``hrm.brain_name``, default the run's name).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aios_tui.config import RunConfig
from aios_tui.engine.models import save_tokenizer
from aios_tui.engine.task import LossOutput, Task
from aios_tui.errors import UserError, first_line

ALWAYS_TRAINED = ("q_head",)


def unwrap(model: nn.Module):
    from aios_tui.engine.hrm.model import HRMForCausalLM
    from aios_tui.engine.loss import unwrap as engine_unwrap

    inner = engine_unwrap(model)
    if not isinstance(inner, HRMForCausalLM):
        raise TypeError(f"expected an HRM ACTv1 model, got {type(inner).__name__}")
    return inner


def is_hrm_dir(path: str) -> bool:
    """A directory holding a saved HRMForCausalLM (the run's ``base/`` or an export)."""
    import json

    cfg_file = Path(path).expanduser() / "config.json"
    if not cfg_file.is_file():
        return False
    try:
        values = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and values.get("model_type") == "hrm_actv1"


def load_saved(path: str | os.PathLike, device: torch.device | str | None = None):
    """(model, tokenizer) of a directory holding a saved HRMForCausalLM (a run's ``base/``, an
    export); what cannot be read there is said in one line, not as transformers' traceback."""
    import json

    from safetensors import SafetensorError
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from aios_tui.engine.hrm.model import HRMForCausalLM, config_problem

    path = Path(path).expanduser()

    def damaged(name: str, why: Any) -> UserError:
        why = why.strerror if isinstance(why, OSError) and why.strerror else why
        return UserError(f"{path}: {name} cannot be read ({first_line(why)}); the saved HRM ACTv1 model there "
                         "is damaged")

    try:
        problem = config_problem(json.loads((path / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise damaged("config.json", exc) from None
    if problem:
        raise damaged("config.json", problem)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its report of mismatched shapes: many lines, said in one below
    try:
        model = HRMForCausalLM.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, RuntimeError, SafetensorError) as exc:  # torn, missing or of other shapes
        if "mismatched_sizes" in str(exc):  # transformers' own text points at that report
            exc = "its tensors' shapes do not match config.json"
        raise damaged("model.safetensors", exc) from None
    finally:
        hf_logging.set_verbosity(level)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise damaged("its tokenizer files", exc) from None
    return (model if device is None else model.to(device)), tokenizer


def brain_dir(cfg: RunConfig, run_name: str) -> Path:
    return Path(cfg.hrm.bundle_dir).expanduser() / (cfg.hrm.brain_name or run_name)


def architecture_conflicts(cfg: RunConfig, arch: dict) -> list[tuple[str, Any, Any]]:
    """(field, value in cfg, value in the bundle) for every architecture field that differs."""
    from aios_tui.engine.hrm.bundle import ARCH_FIELDS

    return [(f, getattr(cfg.hrm, f), arch[f]) for f in ARCH_FIELDS
            if f in arch and getattr(cfg.hrm, f) != arch[f]]


def adopt_bundle_architecture(cfg: RunConfig, typed: set[str]) -> list[str]:
    """Take the student bundle's architecture and tokenizer into ``cfg``.

    The fields the user typed must agree with the bundle; one problem line each where they
    do not. The others are set from the bundle so config.toml records what really trains.
    """
    from aios_tui.engine.hrm.bundle import read_brain

    brain = read_brain(cfg.hrm.student_init)
    problems = []
    for name, mine, theirs in architecture_conflicts(cfg, brain.get("architecture", {})):
        if name in typed:
            problems.append(f"hrm.{name}: {mine} differs from the student bundle's {theirs}; "
                            f"drop --{name.replace('_', '-')} to use the bundle's")
        else:
            setattr(cfg.hrm, name, theirs)
    source = brain.get("tokenizer", {}).get("source")
    if source and cfg.model.model != source:
        if "model" in typed:
            problems.append(f"model.model: {cfg.model.model!r} is not the student bundle's tokenizer "
                            f"({source!r}); drop --model, the bundle carries its tokenizer")
        else:
            cfg.model.model = source
    return problems


class HRMTask(Task):
    name = "hrm_actv1"
    command = "train-actv1"

    def __init__(self) -> None:
        self.fused = False
        self._adalora: tuple[float, list] | None = None
        self.started_at = time.time()
        self.last_step: int | None = None
        self.bundle: Path | None = None  # written by on_finish
        self.metrics_file: Path | None = None

    # -- before anything is loaded ---------------------------------------------------------

    def preflight(self, cfg: RunConfig) -> None:
        from aios_tui.engine.hrm.bundle import check_bundle
        from aios_tui.engine.models import model_source_problem

        problems = []
        if cfg.hrm.student_init and not is_hrm_dir(cfg.model.model):
            try:
                brain = check_bundle(cfg.hrm.student_init)
            except UserError as exc:
                raise UserError([f"hrm.student_init: {p}" for p in exc.problems]) from None
            for name, mine, theirs in architecture_conflicts(cfg, brain.get("architecture", {})):
                problems.append(f"hrm.{name}: {mine} differs from the student bundle's {theirs}")
        elif not is_hrm_dir(cfg.model.model):
            problem = model_source_problem(cfg.model.model, weights=False)
            if problem:
                problems.append(problem.replace("model.model:", "model.model (the tokenizer):"))
        problems += self._destination_problems(cfg)
        if problems:
            raise UserError(problems)
        if cfg.peft.use_peft:
            self._check_targets(cfg)

    def _destination_problems(self, cfg: RunConfig) -> list[str]:
        """The bundle a finished run writes replaces what is at its place: only ever a bundle."""
        from aios_tui.engine.hrm.bundle import BRAIN_FILE

        from aios_tui.engine.preflight import writable_problem

        place = writable_problem(Path(cfg.hrm.bundle_dir), "hrm.bundle_dir", directory=True)
        if place:  # found only after training otherwise
            return [place]
        name = cfg.train.run_name or Path(cfg.train.run_dir or ".").name
        dest = brain_dir(cfg, name)
        if not dest.exists() or (dest / BRAIN_FILE).is_file() or (dest.is_dir() and not any(dest.iterdir())):
            return []
        return [f"hrm.brain_name: {dest} exists and is not a brain bundle, and the finished run would "
                f"replace it; choose another --brain-name or --bundle-dir"]

    def _check_targets(self, cfg: RunConfig) -> None:
        """Target names against the architecture, built on the meta device (no weights)."""
        from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM
        from aios_tui.engine.peft_setup import check_targets

        h = cfg.hrm
        with torch.device("meta"):
            model = HRMForCausalLM(HRMConfig(hidden_size=h.hidden_size, num_heads=h.num_heads,
                                             h_layers=1, l_layers=1, expansion=h.expansion))
        check_targets(model, cfg, "HRM ACTv1", self.peft_extras(cfg)["modules_to_save"])

    # -- the model -------------------------------------------------------------------------

    def build(self, cfg: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        from aios_tui.engine.models import DTYPES

        self.fused = cfg.train.fused_loss
        if is_hrm_dir(cfg.model.model):  # the run's own saved base: resume and export
            model, tokenizer = load_saved(cfg.model.model)
        elif cfg.hrm.student_init:
            from aios_tui.engine.hrm.bundle import load_bundle

            loaded = load_bundle(cfg.hrm.student_init, adapter="merge")
            model, tokenizer = loaded.model, loaded.tokenizer
        else:
            model, tokenizer = self._fresh(cfg)
        model.config.max_seq_len = cfg.data.max_seq_len
        model.config.halt_max_steps = cfg.hrm.halt_max_steps
        model.config.halt_exploration_prob = cfg.hrm.halt_exploration_prob
        if len(tokenizer) > model.config.vocab_size:
            raise UserError(f"the tokenizer has {len(tokenizer)} tokens but the model only "
                            f"{model.config.vocab_size} embeddings")
        model.train()
        return model.to(device=device, dtype=DTYPES[cfg.model.model_dtype]), tokenizer

    def _fresh(self, cfg: RunConfig):
        from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM
        from aios_tui.engine.models import load_tokenizer

        tokenizer = load_tokenizer(cfg.model.model)
        h = cfg.hrm
        config = HRMConfig(vocab_size=len(tokenizer), hidden_size=h.hidden_size, num_heads=h.num_heads,
                           h_layers=h.h_layers, l_layers=h.l_layers, h_cycles=h.h_cycles,
                           l_cycles=h.l_cycles, expansion=h.expansion, max_seq_len=cfg.data.max_seq_len,
                           halt_max_steps=h.halt_max_steps, halt_exploration_prob=h.halt_exploration_prob,
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id)
        # The initial weights depend on the run's seed only, never on what ran before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed)
            model = HRMForCausalLM(config)
        return model, tokenizer

    def peft_extras(self, cfg: RunConfig) -> dict[str, Any]:
        keep = list(ALWAYS_TRAINED) + (["lm_head"] if cfg.hrm.lm_head_trainable else [])
        return {"modules_to_save": keep}

    def model_config_dict(self, model: nn.Module) -> dict | None:
        c = unwrap(model).config
        return {"model_type": "hrm_actv1", "hidden_size": c.hidden_size, "num_heads": c.num_heads,
                "h_layers": c.h_layers, "l_layers": c.l_layers, "h_cycles": c.h_cycles,
                "l_cycles": c.l_cycles, "expansion": c.expansion, "intermediate_size": c.intermediate_size,
                "vocab_size": c.vocab_size, "max_seq_len": c.max_seq_len, "halt_max_steps": c.halt_max_steps}

    # -- the loss --------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: dict, step: int) -> LossOutput:
        from aios_tui.engine.hrm.act import act_loss
        from aios_tui.engine.loss import adalora_orth_penalty, adalora_penalty_params

        training = model.training
        result = act_loss(unwrap(model), batch["input_ids"], batch["labels"], training=training,
                          fused=self.fused)
        metrics = dict(result.metrics)
        report = metrics.pop("lm_loss")
        loss = result.loss
        if training:
            if step >= 0:
                self.last_step = step
            metrics["objective"] = result.loss.detach()
            if hasattr(model, "peft_config"):
                if self._adalora is None:
                    is_adalora = any(type(c).__name__ == "AdaLoraConfig" for c in model.peft_config.values())
                    self._adalora = adalora_penalty_params(model) if is_adalora else (0.0, [])
                penalty = adalora_orth_penalty(*self._adalora)
                if penalty is not None:
                    loss = loss + penalty
                    metrics["orth_reg"] = penalty.detach()
        return LossOutput(loss, result.n_tokens, report=report, metrics=metrics)

    # -- saving ----------------------------------------------------------------------------

    def save_base(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, dest: Path) -> bool:
        # A fresh model exists only in this process and a student bundle may be rewritten by
        # this very run: keep the starting weights with the run so resume and export use them.
        unwrap(model).save_pretrained(dest)
        save_tokenizer(tokenizer, dest)
        return True

    def on_finish(self, model: nn.Module, tokenizer: Any, cfg: RunConfig, run_dir: Path) -> None:
        from aios_tui.engine.hrm.bundle import write_bundle
        from aios_tui.engine.peft_setup import parameters_summary
        from aios_tui.metrics.rundir import RunDir

        run = RunDir(run_dir)
        status = run.read_status()
        dest = brain_dir(cfg, cfg.train.run_name or run.name)
        session = self.session_record(cfg, run, status)
        peft_summary = None
        if hasattr(model, "peft_config"):
            conf = next(iter(model.peft_config.values()))
            peft_summary = {"method": cfg.peft.peft_method,
                            "target_modules": sorted(conf.target_modules) if conf.target_modules else [],
                            "modules_to_save": sorted(conf.modules_to_save or []),
                            **parameters_summary(model)}
        # A fresh model starts a new history, replacing any older brain of the same name.
        parent = cfg.hrm.student_init or None
        self.metrics_file = Path(status.get("metrics") or run.default_metrics)
        try:
            self.bundle = write_bundle(dest, model=model, tokenizer=tokenizer, session=session,
                                       tokenizer_source=self.tokenizer_source(cfg), parent=parent,
                                       metrics_file=self.metrics_file,
                                       peft_summary=peft_summary, run_key=str(Path(run_dir).resolve()))
        except OSError as exc:  # the place was checked before training: a full disk, or a change since
            raise UserError(f"hrm.bundle_dir: the brain bundle {dest} could not be written "
                            f"({exc.strerror or exc}); the trained weights are in the run's last "
                            f"checkpoint, which `aios-tui export {run.path}` writes out") from None

    def describe_model(self, cfg: RunConfig) -> str:
        # --model names only the tokenizer here; the brain is new or a student bundle
        start = f"student {cfg.hrm.student_init}" if cfg.hrm.student_init else "a new brain"
        return f"HRM ACTv1 ({start}, tokenizer {self.tokenizer_source(cfg)})"

    def tokenizer_source(self, cfg: RunConfig) -> str:
        if cfg.hrm.student_init:
            from aios_tui.engine.hrm.bundle import read_brain

            try:
                return read_brain(cfg.hrm.student_init).get("tokenizer", {}).get("source", cfg.model.model)
            except UserError:
                pass
        return cfg.model.model

    def session_record(self, cfg: RunConfig, run, status: dict) -> dict:
        from aios_tui.data import dataset_path
        from aios_tui.engine.token_cache import dataset_sha256

        data = dataset_path(cfg.data.dataset_file)
        dataset = {"path": str(data.resolve())}
        try:
            dataset.update(bytes=data.stat().st_size, sha256=dataset_sha256(data))
        except OSError:
            pass
        steps = status.get("step")
        if steps is None:
            steps = (self.last_step + 1) if self.last_step is not None else 0
        return {
            "run_dir": str(run.path.resolve()), "run_name": status.get("run_name") or run.name,
            "state": "finished", "steps": int(steps), "total_steps": cfg.train.steps,
            "method": cfg.method_label(), "halt_max_steps": cfg.hrm.halt_max_steps,
            "lm_head_trainable": cfg.hrm.lm_head_trainable, "dataset": dataset,
            "student_init": cfg.hrm.student_init or None, "last_loss": status.get("last_loss"),
            "started_at": status.get("started_at", self.started_at), "finished_at": time.time(),
        }
