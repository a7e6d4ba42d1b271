"""Checks that need no weights: run before a run directory is made or a process is started."""

from __future__ import annotations

import os
from pathlib import Path

from aios_tui.config import RunConfig
from aios_tui.data import dataset_path, read_documents
from aios_tui.data.chat import render_all
from aios_tui.errors import UserError


def memory_problems(cfg: RunConfig, task=None) -> list[str]:
    """``task``: the training task, when known (quantized bases need a Hugging Face causal LM)."""
    problems = []
    if cfg.memory.load_in_8bit or cfg.memory.load_in_4bit or cfg.memory.use_8bit_optimizer \
            or cfg.model.model != "tiny":
        from aios_tui.engine.quant import problems as saver_problems

        problems += saver_problems(cfg, task)
    if cfg.model.model_dtype == "fp16" and not cfg.peft.use_peft:
        problems.append("model.model_dtype: fp16 weights cannot be trained in full (the updates "
                        "underflow); use fp32 with --amp, or bf16")
    return problems


def compile_problems(cfg: RunConfig, device_type: str) -> list[str]:
    """What ``train.torch_compile`` needs on CUDA: Triton, and a C compiler to build its launcher.

    Without them compilation fails at the first step, after the model has loaded."""
    if not cfg.train.torch_compile or device_type != "cuda":
        return []
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("triton") is None:
        return ["train.torch_compile: Triton is not installed (CUDA builds of torch bring it); "
                "install it or leave --torch-compile off"]
    # Triton's own lookup: $CC as given, else gcc, else clang
    if not (os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")):
        return ["train.torch_compile: no C compiler on PATH (Triton builds its kernel launcher with "
                "one); install gcc or leave --torch-compile off"]
    if not python_headers().is_file():
        return [f"train.torch_compile: the Python headers are missing ({python_headers()}; Triton builds "
                "its kernel launcher against them); install python3-dev or leave --torch-compile off"]
    return []


def attention_problems(cfg: RunConfig, device_type: str, task=None) -> list[str]:
    """What ``model.attn_implementation = "flash_attention_2"`` needs: a CUDA GPU and the
    flash-attn package. Without them loading the model fails (for ``tiny`` too: a resume loads
    its saved base/ as a Hugging Face model). HRM ACTv1 has its own attention (its --model only
    names the tokenizer)."""
    from aios_tui.engine.task import CausalLMTask

    if cfg.model.attn_implementation != "flash_attention_2":
        return []
    if task is not None and not isinstance(task, CausalLMTask):
        return []
    if device_type != "cuda":
        return ["model.attn_implementation: flash_attention_2 runs on a CUDA GPU only; "
                "use sdpa (the default) or eager"]
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        return ["model.attn_implementation: flash_attention_2 needs the flash-attn package, which is "
                "not installed (pip install flash-attn); use sdpa (the default) or eager"]
    return []


def python_headers():
    """Python.h where Triton looks for it (Debian's posix_local scheme read as posix_prefix)."""
    import sysconfig
    from pathlib import Path

    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":
        scheme = "posix_prefix"
    return Path(sysconfig.get_paths(scheme=scheme)["include"]) / "Python.h"


def check_memory(cfg: RunConfig, task=None) -> None:
    problems = memory_problems(cfg, task)
    if problems:
        raise UserError(problems)


def writable_problem(path: Path, what: str, *, directory: bool, fix: str = "name a file") -> str | None:
    """Why ``path`` (a directory or a file to append to) cannot be written, found by trying:
    only what the probe itself created is removed again, so a refusal leaves nothing behind.
    ``fix`` says what to do about a file that is something else (a directory, a pipe)."""
    shown = Path(path).expanduser()
    made: list[Path] = []
    try:
        target = shown.resolve()  # through a symlink: the link itself is never touched
        if target.exists():
            if directory and not target.is_dir():
                return f"{what} {shown}: exists and is not a directory"
            if not directory and not target.is_file():
                return f"{what} {shown}: is not a regular file; {fix}"
        missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            made.append(p)
        if directory:
            if not target.exists():
                target.mkdir()
                made.append(target)
            probe = target / f".aios-tui-probe-{os.getpid()}"
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            made.append(probe)
        else:
            try:  # created here only if it did not exist; another's file is only opened
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                made.append(target)
            except FileExistsError:
                os.close(os.open(target, os.O_WRONLY | os.O_APPEND))
    except OSError as exc:
        return f"{what} {shown}: cannot be written ({exc.strerror or exc})"
    finally:
        for p in reversed(made):
            try:
                p.rmdir() if p.is_dir() else p.unlink()
            except OSError:
                pass
    return None


def output_problems(cfg: RunConfig, run_dir: Path | None = None) -> list[str]:
    """The run directory and --log-file, before either is made: a run that cannot write them
    must not start and leave half a run behind."""
    problems = []
    if run_dir is not None:
        problems.append(writable_problem(run_dir, "train.run_dir", directory=True))
    if cfg.train.log_file.strip():
        log = Path(cfg.train.log_file)
        problems.append(writable_problem(log, "train.log_file", directory=False))
        if run_dir is not None:
            problems.append(shared_log_problem(log, run_dir))
    return [p for p in problems if p]


def shared_log_problem(log: Path, run_dir: Path) -> str | None:
    """A metrics file another live run writes to: two runs' lines would interleave. (One after
    another is AI-OS's habit with --log-file and stays allowed: each run starts with its header.)"""
    from aios_tui.metrics.rundir import LIVE_STATES, default_runs_root, list_runs

    target = log.expanduser().resolve()
    own = run_dir.expanduser().resolve()
    roots = {default_runs_root().resolve(), own.parent}
    for root in roots:
        for run in list_runs(root):
            if run.path.resolve() == own:
                continue
            read = run.load_status()
            metrics = read.fields.get("metrics")
            if read.state() in LIVE_STATES and metrics and Path(metrics).resolve() == target:
                return (f"train.log_file {log}: the live run {run.path} writes its metrics there; "
                        "give this run another --log-file")
    return None


def check_dataset(cfg: RunConfig) -> None:
    """The dataset read as a run reads it; chat records rendered with the model's chat template
    too, so a template that cannot train on them is refused before the start."""
    path = dataset_path(cfg.data.dataset_file)
    docs = read_documents(path)
    if docs[0].turns:
        tokenizer = _tokenizer_at_hand(cfg.model.model)
        if tokenizer is not None:
            render_all(docs, tokenizer, cfg.model.model, str(path))


def _tokenizer_at_hand(name: str):
    """The tokenizer of ``name`` when it can be had without a download, else None (a Hub one
    still to fetch is checked at the start, once it is there)."""
    from aios_tui.engine.models import load_tokenizer

    if name == "tiny" or Path(name).expanduser().is_dir():
        return load_tokenizer(name)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError, KeyError):
        return None


def tokenizer_problems(cfg: RunConfig, task=None) -> list[str]:
    """A local model directory's tokenizer, read and tried on a sample text (no weights are
    read): files that are there but incomplete give a tokenizer that encodes text to nothing.
    For a causal LM (``task``), the tokenizer must also fit the model's embedding."""
    name = cfg.model.model
    if name == "tiny" or cfg.hrm.student_init or not Path(name).expanduser().is_dir():
        return []  # the built-in byte tokenizer, a bundle's own, or one from the Hub at the start
    from aios_tui.engine.models import load_tokenizer, read_config, vocab_size
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.tokenizer import vocab_problem

    try:
        tokenizer = load_tokenizer(name)
    except UserError as exc:
        return exc.problems
    if task is not None and not isinstance(task, CausalLMTask):
        return []  # --model names only the tokenizer; the model's embedding is sized to it
    config = read_config(name)
    problem = vocab_problem(tokenizer, vocab_size(config), name) if config is not None else None
    return [problem] if problem else []


def check_targets_without_weights(cfg: RunConfig) -> RunConfig:
    """Target modules against the architecture built on the meta device (no weights loaded);
    ``cfg`` with the targets in the model's own names."""
    if not cfg.peft.use_peft:
        return cfg
    from aios_tui.engine.models import meta_model
    from aios_tui.engine.peft_setup import check_targets, own_targets

    model = meta_model(cfg)
    if model is not None:
        cfg = own_targets(model, cfg, cfg.model.model)
        check_targets(model, cfg)
    return cfg


def check_all(cfg: RunConfig, task) -> RunConfig:
    """Everything that can be known about ``cfg`` without loading the model; ``cfg`` as it will
    run (targets in the model's own names)."""
    from aios_tui.engine.models import resolve_device
    from aios_tui.engine.task import CausalLMTask

    problems: list[str] = []
    for check in (task.preflight, lambda c: check_memory(c, task), check_dataset):
        try:
            check(cfg)
        except UserError as exc:
            problems += exc.problems
    if not any(p.startswith("model.model") for p in problems):
        problems += tokenizer_problems(cfg, task)
    try:
        device = resolve_device(cfg.train.device)
        problems += compile_problems(cfg, device.type)
        problems += attention_problems(cfg, device.type, task)
        if cfg.train.fp8:
            from aios_tui.engine.fp8 import problems as fp8_problems

            problems += fp8_problems(cfg, device, task.command)
    except UserError as exc:
        problems += exc.problems
    problems += output_problems(cfg, Path(cfg.train.run_dir) if cfg.train.run_dir.strip() else None)
    if problems:
        raise UserError(problems)
    if isinstance(task, CausalLMTask):
        cfg = check_targets_without_weights(cfg)
    return cfg
