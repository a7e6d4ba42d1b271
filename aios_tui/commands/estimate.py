"""`aios-tui estimate`: the VRAM budget of a run configuration, before anything is loaded."""

from __future__ import annotations

import argparse
import json

from aios_tui.config import add_config_args, config_from_args
from aios_tui.metrics.fmt import human_bytes

DESCRIPTION = """\
Estimates the GPU memory a training step of this configuration will take: the peak PyTorch
allocates, the device memory NVML will show (allocator cache and CUDA context included), a
breakdown, whether it fits a GPU, and changes that would make it fit, each with its figure.
Nothing is loaded: --model may be a directory that holds only config.json, 'tiny', or a
well-known hub id (see --list-models). Without --gpu-memory the detected GPU is used, if any.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="VRAM budget of a configuration (no GPU or weights needed)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    out = p.add_argument_group("estimate options")
    out.add_argument("--gpu-memory", metavar="SIZE|GPU", default=None,
                     help="GPU memory to compare with: 24GiB, 80G (powers of 1024), 24GB (powers of 1000), "
                          "a byte count, or a GPU name from --list-gpus (default: the detected GPU)")
    out.add_argument("--hrm", action="store_true",
                     help="estimate the HRM ACTv1 model of the hrm settings (vocabulary from --model's tokenizer); "
                          "with --student-init BUNDLE or --model BUNDLE, the bundle's model (implied)")
    out.add_argument("--json", action="store_true",
                     help="print the estimate as JSON; with --list-gpus or --list-models, the list")
    out.add_argument("--detail", action="store_true", help="also show activations by kind and every phase")
    out.add_argument("--list-gpus", action="store_true", help="list the GPUs --gpu-memory knows by name and exit")
    out.add_argument("--list-models", action="store_true", help="list the hub ids known without a download and exit")
    add_config_args(p)
    p.set_defaults(func=run)


def detect_gpu() -> tuple[int | None, str] | None:
    """(total bytes, name) of the GPU a run would train on (see ``training_device``); None
    without one. A GPU in MIG mode gives no size: a run gets one instance's share of it."""
    try:
        from aios_tui.gpu import open_backend, training_device, training_memory
    except ImportError:
        return None
    try:
        backend = open_backend()
        try:
            if not backend.available or backend.simulated:
                return None
            devices, _ = backend.read()
        finally:
            backend.close()
    except Exception:  # NVML missing or broken: the estimate still stands without a GPU
        return None
    d = training_device(devices)
    if d is None:
        return None
    total = training_memory(d)
    if total is None and not d.mig:
        return None
    return total, f"{d.name} (GPU {d.index}, detected{', in MIG mode' if d.mig else ''})"


def _ignored_by_a_list(args: argparse.Namespace) -> None:
    """--list-gpus and --list-models print a list and exit: anything typed beside them but
    --json would be dropped without a word, the other list included."""
    from aios_tui.config.resolve import flag_name
    from aios_tui.errors import UserError

    lists = [flag for flag, on in (("--list-gpus", args.list_gpus), ("--list-models", args.list_models)) if on]
    if not lists:
        return
    given = lists[1:] + [flag for flag, value in (("--gpu-memory", args.gpu_memory), ("--hrm", args.hrm),
                                                  ("--detail", args.detail), ("--preset", args.preset),
                                                  ("--config", args.config)) if value not in (None, False)]
    for key, value in vars(args).items():
        if key.startswith("cfg__"):
            flag = flag_name(key[len("cfg__"):])
            given.append(flag if value is not False else "--no-" + flag[2:])
    if given:
        them = ", ".join(given)
        raise UserError(f"{lists[0]} prints a list and exits, so {them} {'has' if len(given) == 1 else 'have'} "
                        f"no effect with it; drop {them} (only --json goes with a list)")


def run(args: argparse.Namespace) -> int:
    from aios_tui import vram

    _ignored_by_a_list(args)
    if args.list_gpus:
        if args.json:
            print(json.dumps([{"key": g.key, "label": g.label, "total_bytes": g.total_bytes} for g in vram.GPUS],
                             indent=2))
            return 0
        for g in vram.GPUS:
            print(f"{g.key:10s} {g.label:18s} {human_bytes(g.total_bytes):>11s}")
        return 0
    if args.list_models:
        from aios_tui.vram.known import KNOWN, known_aliases, known_names

        if args.json:
            print(json.dumps(["tiny", *known_names()], indent=2))
            return 0
        aliases = known_aliases()
        width = max(map(len, KNOWN))
        print(f"{'tiny':{width}s}  (the built-in test model)")
        for name in known_names():
            print(f"{name:{width}s}  {KNOWN[name]['model_type']}")
            for alias in aliases[name]:   # one per line: several side by side outrun 80 columns
                print(f"  also: {alias}")
        return 0
    cfg = config_from_args(args)
    gpu_bytes, gpu_label = None, None
    if args.gpu_memory is not None:
        gpu_bytes = vram.parse_size(args.gpu_memory)
        found = vram.find_gpu(args.gpu_memory)
        gpu_label = found.label if found and found.total_bytes == gpu_bytes else None
    else:
        detected = detect_gpu()
        if detected:
            gpu_bytes, gpu_label = detected
    model_config = None
    bundle_as_model = not cfg.hrm.student_init and _is_bundle(cfg.model.model)
    if bundle_as_model:
        # what `train-actv1 --student-init` would train, checked the same way
        cfg.hrm.student_init = cfg.model.model
    if cfg.hrm.student_init:
        model_config = _student_model_config(args, cfg, model_typed=not bundle_as_model)
    elif args.hrm:
        vocab = vram.shape_from_model_arg(cfg.model.model).vocab
        model_config = vram.hrm_model_config(cfg, vocab)
    est = vram.estimate_for_run(cfg, model_config, gpu_bytes, gpu_label=gpu_label)
    if args.json:
        print(json.dumps(est.to_dict(), indent=2))
    else:
        print(render(est, detail=args.detail), end="")
    return 0


def _is_bundle(model: str) -> bool:
    from pathlib import Path

    # not bundle.BRAIN_FILE: that module imports torch, which an estimate must not pay for
    return (Path(model).expanduser() / "brain.json").is_file()


def _student_model_config(args: argparse.Namespace, cfg, model_typed: bool = True) -> dict:
    """The HRM ACTv1 model a `train-actv1 --student-init BUNDLE` run would train: the bundle's
    architecture and vocabulary, the run's sequence length and ACT segments."""
    from aios_tui import vram
    from aios_tui.commands.train_actv1 import typed_fields
    from aios_tui.config import ConfigError
    from aios_tui.engine.hrm.bundle import read_brain
    from aios_tui.engine.hrm.task import adopt_bundle_architecture
    from aios_tui.errors import UserError

    try:
        brain = read_brain(cfg.hrm.student_init)
        typed = typed_fields(args) - (set() if model_typed else {"model"})
        problems = adopt_bundle_architecture(cfg, typed)
    except UserError as exc:
        raise UserError([f"hrm.student_init: {p}" for p in exc.problems]) from None
    if problems:
        raise ConfigError(problems)
    vocab = (brain.get("architecture") or {}).get("vocab_size") or (brain.get("tokenizer") or {}).get("vocab_size")
    return {**vram.hrm_model_config(cfg, int(vocab)), "_name_or_path": str(cfg.hrm.student_init)}


MOMENTS = {"loss": "at the loss, end of forward", "backward": "in backward", "optimizer": "at the optimizer step"}


def title(shape) -> str:
    from aios_tui.vram.shape import HRM

    size = f"{shape.param_count():,} base parameters"
    if shape.family != HRM:
        return f"VRAM estimate for {shape.name or shape.model_type} ({shape.family}, {size})"
    # --hrm's model is built from the hrm settings, not from --model, which only lends its vocabulary
    if _is_bundle(shape.name):
        return f"VRAM estimate for the HRM ACTv1 model of bundle {shape.name} ({size})"
    return f"VRAM estimate for the HRM ACTv1 model (hrm settings, {shape.name}'s vocabulary, {size})"


def elsewhere(est, key: str) -> str:
    """For a row the peak does not hold: its largest size at another moment of the step
    (a full fine-tune's gradients exist only after the peak at the loss)."""
    if est.breakdown.get(key, 0):
        return ""
    sizes = {m: bd.get(key, 0) for m, bd in est.phase_breakdowns.items()}
    moment = max(sizes, key=lambda m: sizes[m], default=None)
    if moment is None or not sizes[moment]:
        return ""
    return f"(none at the peak; {human_bytes(sizes[moment])} {MOMENTS[moment]})"


def render(est, detail: bool = False) -> str:
    from aios_tui.vram import KEYS, LABELS

    s = est.setup
    lines = []
    sh = est.shape
    lines.append(title(sh))
    lines.append(f"  {s.label()}")
    pct = 100.0 * est.params_trainable / est.params_total if est.params_total else 0.0
    lines.append(f"  trainable {est.params_trainable:,} of {est.params_total:,} parameters ({pct:.3g}%)")
    lines.append("")
    width = 34
    total = est.peak_allocated_bytes or 1
    where = MOMENTS[est.phase]
    lines.append(f"Held at the peak ({where}):")
    for key in KEYS:
        v = est.breakdown.get(key, 0)
        bar = "#" * int(round(20 * v / total))
        lines.append(f"  {LABELS[key]:<{width}}{human_bytes(v):>11s}  {bar or elsewhere(est, key)}".rstrip())
    lines.append("  " + "-" * (width + 11))
    lines.append(f"  {'peak allocated by PyTorch':<{width}}{human_bytes(est.peak_allocated_bytes):>11s}  ({where})")
    lines.append(f"  {'reserved by the allocator':<{width}}{human_bytes(est.peak_reserved_bytes):>11s}")
    if est.paged_bytes:
        # counted in the device total, not in the optimizer row above, which is PyTorch's share
        lines.append(f"  {'+ paged optimizer states':<{width}}{human_bytes(est.paged_bytes):>11s}  "
                     "(managed memory, outside the allocator)")
    lines.append(f"  {'device memory in use (NVML)':<{width}}{human_bytes(est.device_used_bytes):>11s}  "
                 "(with CUDA context)")
    lines.append("")
    if est.gpu_memory_bytes is None and est.gpu_label:
        lines.append(f"GPU: {est.gpu_label}: a run gets one MIG instance's memory; give its size "
                     "with --gpu-memory; fits: unknown")
    elif est.gpu_memory_bytes is None:
        lines.append("GPU: none detected and no --gpu-memory given; fits: unknown")
    else:
        head = est.headroom_bytes
        verdict = (f"fits, {human_bytes(head)} to spare" if est.fits
                   else f"DOES NOT FIT, {human_bytes(-head)} short")
        what = f"GPU {est.gpu_label} ({human_bytes(est.gpu_memory_bytes)})" if est.gpu_label \
            else f"GPU memory {human_bytes(est.gpu_memory_bytes)}"
        lines.append(f"{what}: {verdict}")
    if est.suggestions:
        lines.append("")
        lines.append("Changes that lower the peak (peak allocated / device memory):")
        for sg in est.suggestions:
            fit = "" if sg.fits is None else ("  fits" if sg.fits else "  still too big")
            lines.append(f"  {human_bytes(sg.peak_allocated_bytes):>10s} / {human_bytes(sg.device_used_bytes):>10s}"
                         f"  {sg.change}{fit}")
            lines.append(f"  {'':>23s}  {sg.flags}")
    if detail:
        lines.append("")
        lines.append("Kept for backward, by kind (whole model):")
        for k, v in est.details.items():
            lines.append(f"  {k:<{width}}{human_bytes(v):>11s}")
        lines.append("Peak by moment of the step:")
        for k, v in est.phases.items():
            lines.append(f"  {k:<{width}}{human_bytes(v):>11s}")
    if est.assumptions:
        lines.append("")
        lines.append("Assumptions:")
        lines += [f"  - {a}" for a in est.assumptions]
    return "\n".join(lines) + "\n"
