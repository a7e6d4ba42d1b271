"""Brain bundles: a trained HRM ACTv1 student and everything needed to use it, in one directory.

    <bundle_dir>/<brain_name>/
      actv1_student.safetensors   the full weights (for a PEFT session: the weights its adapter applies to)
      config.json                 the architecture, loadable with HRMConfig.from_pretrained
      brain.json                  architecture, tokenizer, training steps, sessions, dataset history
      tokenizer.json ...          the tokenizer's own files, so the bundle works offline
      metrics.jsonl               every session's metrics lines, oldest first
      adapter/                    the PEFT adapter of the last session, when it trained one

History follows the weights: a bundle started from another (``--student-init``) inherits its
sessions, step count, dataset history and metrics. A bundle is written to a temporary
directory beside its final place and renamed into it, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aios_tui.atomic import open_like_plain_files
from aios_tui.engine.models import save_tokenizer
from aios_tui.errors import UserError, first_line

WEIGHTS_FILE = "actv1_student.safetensors"
BRAIN_FILE = "brain.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
ADAPTER_DIR = "adapter"
FORMAT_VERSION = 1
ARCH_FIELDS = ("hidden_size", "num_heads", "h_layers", "l_layers", "h_cycles", "l_cycles", "expansion")
_PEFT_KEY_MARKS = ("lora_", "ia3_", "modules_to_save.", "ranknum")


@dataclass
class LoadedBundle:
    path: Path
    model: torch.nn.Module      # HRMForCausalLM, or a PeftModel around it when the adapter is kept apart
    tokenizer: Any
    brain: dict


def damaged_bundle(path: Path, name: str, exc: BaseException | str) -> UserError:
    """The error for a file of a bundle that cannot be read or used (one line)."""
    if isinstance(exc, OSError) and exc.strerror:
        exc = exc.strerror  # not the path again
    why = first_line(exc).rstrip(":")
    return UserError(f"brain bundle {path}: {name} cannot be read ({why}); the bundle is damaged")


def _brain_problem(brain: Any) -> str | None:
    """What in brain.json is not of the shape this module reads, or None."""
    from aios_tui.engine.hrm.model import config_problem

    if not isinstance(brain, dict):
        return f"it holds {type(brain).__name__}, not an object"
    fmt = brain.get("format", 0)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        return f"its format is {fmt!r}, not a whole number"
    kinds = {"architecture": dict, "tokenizer": dict, "sessions": list, "dataset_history": list,
             "adapter": (dict, type(None)), "last_session": (dict, type(None))}
    for key, kind in kinds.items():
        if key in brain and not isinstance(brain[key], kind):
            return f"its {key} is {type(brain[key]).__name__}"
    if config_problem(brain.get("architecture", {})):
        return f"architecture: {config_problem(brain['architecture'])}"
    tokenizer = brain.get("tokenizer", {})
    if not isinstance(tokenizer.get("source", ""), str) or not (
            isinstance(tokenizer.get("files", []), list) and all(isinstance(f, str) for f in tokenizer.get("files", []))):
        return "its tokenizer source or files are not names"
    records = [*brain.get("sessions", []), *brain.get("dataset_history", []), brain.get("last_session") or {}]
    for record in records:
        if not isinstance(record, dict):
            return f"a session or dataset record is {type(record).__name__}, not an object"
        for key in ("steps", "metrics_offset"):
            v = record.get(key, 0)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"a session's {key} is {v!r}, not a whole number"
    return None


def read_brain(path: str | os.PathLike) -> dict:
    """brain.json of a bundle; UserError when ``path`` is not a usable bundle."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise UserError(f"brain bundle {path}: no such directory")
    brain_file = path / BRAIN_FILE
    if not brain_file.exists():
        raise UserError(f"brain bundle {path}: no {BRAIN_FILE}; a bundle is a directory "
                        f"written by `aios-tui train-actv1` (see --bundle-dir and --brain-name)")
    try:
        brain = json.loads(brain_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise damaged_bundle(path, BRAIN_FILE, exc) from None
    if isinstance(brain, dict) and brain.get("model_type") != "hrm_actv1":
        raise UserError(f"brain bundle {path}: model_type is {brain.get('model_type')!r}, not 'hrm_actv1'")
    problem = _brain_problem(brain)
    if problem:
        raise damaged_bundle(path, BRAIN_FILE, problem)
    if brain.get("format", 0) > FORMAT_VERSION:
        raise UserError(f"brain bundle {path}: format {brain['format']} is newer than this aios-tui reads "
                        f"({FORMAT_VERSION}); upgrade aios-tui")
    if not (path / WEIGHTS_FILE).is_file():
        raise UserError(f"brain bundle {path}: {WEIGHTS_FILE} is missing")
    return brain


def check_bundle(path: str | os.PathLike) -> dict:
    """brain.json of a bundle whose files are all there and readable, as far as that is known
    without loading the weights: a damaged bundle is refused before a run or an export starts."""
    from safetensors import safe_open

    from aios_tui.engine.adapter_check import check_adapter

    path = Path(path).expanduser()
    brain = read_brain(path)
    bundle_config(path)
    try:
        with safe_open(str(path / WEIGHTS_FILE), framework="pt") as weights:
            weights.keys()
    except Exception as exc:  # safetensors' own error for a torn header or a short file
        raise damaged_bundle(path, WEIGHTS_FILE, exc) from None
    missing = [f for f in brain.get("tokenizer", {}).get("files", []) if not (path / f).is_file()]
    if missing:
        raise UserError(f"brain bundle {path}: {missing[0]} is missing (brain.json lists it among "
                        "the tokenizer's files); the bundle is damaged")
    if _has_adapter(path, brain):
        check_adapter(path, damaged_bundle)
    return brain


def _has_adapter(path: Path, brain: dict) -> bool:
    """brain.json names an adapter, or one is there (a bundle of an older aios-tui)."""
    return brain.get("adapter") is not None or (path / ADAPTER_DIR / "adapter_config.json").is_file()


def bundle_config(path: str | os.PathLike):
    from aios_tui.engine.checkpoint import applying
    from aios_tui.engine.hrm.model import HRMConfig, config_problem

    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        try:
            values = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise damaged_bundle(path, CONFIG_FILE, exc) from None
        problem = (f"it holds {type(values).__name__}, not an object" if not isinstance(values, dict)
                   else config_problem(values))
        if problem:
            raise damaged_bundle(path, CONFIG_FILE, problem)
        with applying(path, CONFIG_FILE, damaged_bundle):
            return HRMConfig.from_pretrained(path)
    arch = read_brain(path).get("architecture") or {}
    return HRMConfig(**arch)


def load_base(path: str | os.PathLike, *, device: torch.device | str | None = None,
              dtype: torch.dtype | None = None):
    """The bundle's stored weights as an HRMForCausalLM (no adapter)."""
    from safetensors.torch import load_file

    from aios_tui.engine.hrm.model import HRMForCausalLM

    path = Path(path).expanduser()
    read_brain(path)
    config = bundle_config(path)
    with torch.device("meta"):
        model = HRMForCausalLM(config)
    try:
        state = load_file(str(path / WEIGHTS_FILE), device=str(device or "cpu"))
    except Exception as exc:  # safetensors' own error for a torn file, or an OSError
        raise damaged_bundle(path, WEIGHTS_FILE, exc) from None
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise UserError(f"brain bundle {path}: {WEIGHTS_FILE} does not match its {CONFIG_FILE} "
                        f"({lines[-1] if lines else exc}); the bundle is damaged") from None
    if dtype is not None:
        model = model.to(dtype)
    return model


def load_tokenizer(path: str | os.PathLike):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    # The bundle's config.json names a model type transformers does not know (hrm_actv1), which
    # it warns about while looking for the tokenizer: nothing to do with the tokenizer itself.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # the last two: a file of another shape
        raise damaged_bundle(Path(path), "its tokenizer files", exc) from None
    finally:
        hf_logging.set_verbosity(level)


def load_bundle(path: str | os.PathLike, *, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None, adapter: str = "merge") -> LoadedBundle:
    """Model, tokenizer and brain.json of a bundle.

    ``adapter``: "merge" folds a stored adapter into the weights, "keep" returns a PeftModel
    (bit-identical to the model that trained it), "ignore" leaves it out.
    """
    from aios_tui.engine.adapter_check import loading_adapter

    path = Path(path).expanduser()
    brain = check_bundle(path)
    model = load_base(path, device=device, dtype=dtype)
    if adapter != "ignore" and _has_adapter(path, brain):
        from peft import PeftModel

        with loading_adapter(path, damaged_bundle):
            model = PeftModel.from_pretrained(model, str(path / ADAPTER_DIR))
        if adapter == "merge":
            model = model.merge_and_unload()
    model.eval()
    return LoadedBundle(path=path, model=model, tokenizer=load_tokenizer(path), brain=brain)


def base_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights a PEFT model's adapters apply to, under the plain model's names."""
    from aios_tui.engine.hrm.model import HRMForCausalLM

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    state: dict[str, torch.Tensor] = {}
    for key, value in inner.state_dict().items():
        if any(mark in key for mark in _PEFT_KEY_MARKS):
            continue
        state[key.replace(".base_layer.", ".").replace(".original_module.", ".")] = value
    with torch.device("meta"):
        expected = set(HRMForCausalLM(inner.config).state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise RuntimeError(f"cannot recover the base weights: missing {missing[:3]}, unexpected {extra[:3]}")
    return state


def run_lines(metrics_file: str | os.PathLike, run_key: str | None) -> bytes:
    """The part of a metrics file that belongs to the run ``run_key``.

    A ``--log-file`` may be shared by several runs (the seed's examples all write
    artifacts/brains/actv1/metrics.jsonl), so the run's lines start at its own header, or at
    its ``started`` event when the file already had a header.
    """
    data = Path(metrics_file).read_bytes()
    if not run_key:
        return data
    offset = 0
    for line in data.splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("run_dir") == run_key and (
                "peft" in record or record.get("event") == "started"):
            return data[offset:]
        offset += len(line)
    return data


def _save_weights(state: dict[str, torch.Tensor], dest: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(dest),
              metadata={"format": "pt"})


def _swap_in(tmp: Path, dest: Path) -> None:
    """Replace ``dest`` with the finished ``tmp`` directory."""
    open_like_plain_files(tmp)
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def architecture(config) -> dict:
    keys = ARCH_FIELDS + ("vocab_size", "intermediate_size", "max_seq_len", "halt_max_steps",
                          "halt_exploration_prob", "rope_theta", "rms_norm_eps")
    return {k: getattr(config, k) for k in keys}


def write_bundle(dest: str | os.PathLike, *, model: torch.nn.Module, tokenizer, session: dict,
                 tokenizer_source: str, parent: str | os.PathLike | None = None,
                 metrics_file: str | os.PathLike | None = None, peft_summary: dict | None = None,
                 run_key: str | None = None) -> Path:
    """Write (or replace) the bundle at ``dest`` from a trained model.

    ``model`` is an HRMForCausalLM or a PeftModel around one; for the latter the base weights
    go to ``actv1_student.safetensors`` and the adapter to ``adapter/``. ``session`` describes
    this training session (steps, dataset, method, ...); ``parent`` is the bundle the session
    started from, whose history this one continues. ``metrics_file`` is appended to the
    inherited metrics. ``run_key`` identifies the run: a resumed run that already wrote this
    history replaces its earlier record (and metrics) instead of adding a second one.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "peft_config")
    inner = model.get_base_model() if is_peft else model
    history_src = Path(parent).expanduser() if parent else None
    prior = read_brain(history_src) if history_src else {}
    sessions = list(prior.get("sessions", []))
    datasets = list(prior.get("dataset_history", []))
    inherited_bytes = None  # all of the parent's metrics
    if run_key and sessions and sessions[-1].get("run_dir") == run_key:
        inherited_bytes = sessions.pop().get("metrics_offset")
        datasets = [d for d in datasets if d.get("run_dir") != run_key]

    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        state = base_state_dict(model) if is_peft else dict(inner.state_dict())
        _save_weights(state, tmp / WEIGHTS_FILE)
        inner.config.save_pretrained(tmp)
        save_tokenizer(tokenizer, str(tmp))
        if is_peft:
            model.save_pretrained(str(tmp / ADAPTER_DIR))

        with open(tmp / METRICS_FILE, "wb") as out:
            if history_src and (history_src / METRICS_FILE).is_file():
                with open(history_src / METRICS_FILE, "rb") as fh:
                    data = fh.read() if inherited_bytes is None else fh.read(inherited_bytes)
                out.write(data if data.endswith(b"\n") or not data else data + b"\n")
            session = {**session, "metrics_offset": out.tell()}
            if metrics_file and Path(metrics_file).is_file():
                out.write(run_lines(metrics_file, run_key))

        now = time.time()
        sessions.append(session)
        if session.get("dataset"):
            datasets.append({**session["dataset"], "steps": session.get("steps", 0), "at": now,
                             "run_dir": session.get("run_dir")})
        files = sorted(p.name for p in tmp.iterdir()
                       if p.is_file() and p.name not in (WEIGHTS_FILE, BRAIN_FILE, CONFIG_FILE, METRICS_FILE))
        n_params = sum(v.numel() for k, v in state.items() if k not in ("H_init", "L_init"))
        same_brain = history_src is not None and history_src.resolve() == dest.resolve()
        brain = {
            "format": FORMAT_VERSION,
            "model_type": "hrm_actv1",
            "name": dest.name,
            "weights": WEIGHTS_FILE,
            "architecture": architecture(inner.config),
            "parameters": n_params,
            "tokenizer": {"source": tokenizer_source, "class": type(tokenizer).__name__,
                          "vocab_size": len(tokenizer), "files": files},
            "training_steps": sum(int(s.get("steps", 0)) for s in sessions),
            "last_session": session,
            "sessions": sessions,
            "dataset_history": datasets,
            "adapter": ({"path": ADAPTER_DIR, **(peft_summary or {})} if is_peft else None),
            "parent": prior.get("parent") if same_brain else (str(history_src.resolve()) if history_src else None),
            "created_at": prior.get("created_at", now) if same_brain else now,
            "updated_at": now,
        }
        (tmp / BRAIN_FILE).write_text(json.dumps(brain, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def refresh_metrics(bundle: str | os.PathLike, metrics_file: str | os.PathLike | None,
                    run_key: str | None = None) -> None:
    """Re-copy the last session's metrics into the bundle (they grow after the bundle is written)."""
    bundle = Path(bundle)
    if not metrics_file or not Path(metrics_file).is_file():
        return
    brain = read_brain(bundle)
    offset = int((brain.get("last_session") or {}).get("metrics_offset", 0))
    target = bundle / METRICS_FILE
    tmp = bundle / f".{METRICS_FILE}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            if target.is_file():
                with open(target, "rb") as fh:
                    out.write(fh.read(offset))
            out.write(run_lines(metrics_file, run_key))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def merge_bundle(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A new bundle at ``dest`` whose weights have ``src``'s adapter folded in."""
    src, dest = Path(src).expanduser(), Path(dest).expanduser()
    problem = merge_destination_problem(src, dest)
    if problem:
        raise UserError(problem)
    loaded = load_bundle(src, adapter="merge")
    if loaded.brain.get("adapter") is None:
        raise UserError(f"brain bundle {src}: has no adapter to merge")
    session = {"kind": "merge", "steps": 0, "from": str(src.resolve()), "at": time.time(),
               "adapter": loaded.brain.get("adapter")}
    return write_bundle(dest, model=loaded.model, tokenizer=loaded.tokenizer, session=session,
                        tokenizer_source=loaded.brain.get("tokenizer", {}).get("source", str(src)),
                        parent=src)


def merge_destination_problem(src: Path, dest: Path) -> str | None:
    """Why a merge of ``src`` may not write ``dest``, or None. ``src`` need not exist yet: a run
    checks its --merge-adapter place before it trains the bundle it will merge."""
    if src.resolve() == dest.resolve():
        return f"brain bundle {src}: merging needs a new bundle name, not the same directory"
    if dest.exists() and not _earlier_merge_of(dest, src.resolve()):
        if not (dest.is_dir() and not any(dest.iterdir())):
            # replacing it would delete another brain (or whatever else is there)
            return f"{dest}: exists and is not an earlier merge of {src}; choose another name for the merged bundle"
    return None


def _earlier_merge_of(dest: Path, src: Path) -> bool:
    """Whether ``dest`` is a bundle an earlier merge of ``src`` wrote (so it may be replaced)."""
    try:
        brain = read_brain(dest)
    except UserError:
        return False
    last = brain.get("last_session") or {}
    return last.get("kind") == "merge" and last.get("from") == str(src)


def export_bundle(src: str | os.PathLike, out: str | os.PathLike | None = None, *,
                  merge: bool = False) -> tuple[Path, str]:
    """`aios-tui export BUNDLE`: (directory, kind).

    With ``merge``: a new bundle with the adapter folded in (default ``<bundle>-merged``).
    Without: the adapter in peft's format plus the tokenizer (default ``<bundle>-adapter``),
    its ``base_model_name_or_path`` naming the bundle whose weights it applies to.
    """
    src = Path(src).expanduser().resolve()
    brain = read_brain(src)
    if merge:
        return merge_bundle(src, Path(out).expanduser() if out else src.parent / f"{src.name}-merged"), "bundle"
    if not _has_adapter(src, brain):
        raise UserError(f"brain bundle {src}: has no adapter (it was trained in full); "
                        f"its weights are {src / WEIGHTS_FILE}")
    load_bundle(src, adapter="keep")  # not a damaged adapter copied out, nor one for a base that cannot load
    dest = Path(out).expanduser() if out else src.parent / f"{src.name}-adapter"
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"--out {dest}: exists and is not empty; choose another --out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src / ADAPTER_DIR, tmp)
        config = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = str(src)
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        load_tokenizer(src).save_pretrained(str(tmp))
        open_like_plain_files(tmp)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, "adapter"
