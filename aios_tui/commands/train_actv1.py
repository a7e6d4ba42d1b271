"""`aios-tui train-actv1`: train an HRM ACTv1 brain (from scratch, or on a brain bundle)."""

from __future__ import annotations

import argparse

from aios_tui.commands.train import add_run_control_args, check_conflicts, train_in_foreground
from aios_tui.config import ConfigError, RunConfig, add_config_args, config_from_args
from aios_tui.errors import UserError

TASK_SPEC = "aios_tui.engine.hrm.task:HRMTask"
# The engine's automatic full fine-tuning rate (5e-5) suits a pretrained model; a brain
# trained from its random initialisation learns next to nothing at it.
FRESH_LR = 3e-4

EPILOG = """\
examples:
  aios-tui train-actv1 --steps 200 --hidden-size 256 --num-heads 4 --brain-name demo
      a new brain on the bundled sample data, byte-level tokenizer (--model tiny)
  aios-tui train-actv1 --student-init artifacts/brains/actv1/demo --steps 1 --batch-size 2 \\
      --halt-max-steps 1 --use-peft --peft-method lora --lora-r 8 --lora-alpha 16 \\
      --lora-target-modules q_proj,v_proj --brain-name demo-lora
      a LoRA adapter on a trained brain; the new bundle keeps the adapter apart
  aios-tui train-actv1 --resume artifacts/runs/NAME --steps 400
  aios-tui generate artifacts/brains/actv1/demo --prompt "count 1 to"

--model names the tokenizer (a Hugging Face id or directory, or tiny for bytes); the model is
built from the hrm settings, or taken from --student-init, whose architecture and tokenizer then
win (typing a different one is an error). q_head always trains beside an adapter; lm_head only
with --lm-head-trainable. A finished run writes the brain bundle to
<bundle-dir>/<brain-name>/ (default: artifacts/brains/actv1/<run name>).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-actv1", help="train an HRM ACTv1 brain (full or PEFT) into a brain bundle",
                       description="Train AI-OS's hierarchical reasoning model (HRM ACTv1) as a causal\n"
                                   "language model with ACT halting, and write a brain bundle.\n"
                                   "Configuration as for `train`: defaults < --preset < --config < flags.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_control_args(p)
    g = p.add_argument_group("brain bundle")
    g.add_argument("--merge-adapter", metavar="NAME", nargs="?", const="", default=None,
                   help="after a PEFT run, also write a bundle with the adapter merged into the "
                        "weights, named NAME (default: <brain-name>-merged)")
    add_config_args(p)
    p.set_defaults(func=run, task_spec=TASK_SPEC, command_name="train-actv1")


def typed_fields(args: argparse.Namespace) -> set[str]:
    return {k[len("cfg__"):] for k in vars(args) if k.startswith("cfg__")}


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """The run's config, with a student bundle's architecture and tokenizer taken in."""
    from aios_tui.commands.train import _resume_config
    from aios_tui import notes

    if args.resume:
        return _resume_config(args)
    cfg = config_from_args(args)
    if cfg.hrm.student_init:
        from aios_tui.engine.hrm.task import adopt_bundle_architecture

        try:
            problems = adopt_bundle_architecture(cfg, typed_fields(args))
        except UserError as exc:
            raise UserError([f"hrm.student_init: {p}" for p in exc.problems]) from None
        if problems:
            raise ConfigError(problems)
    if cfg.train.lr == 0 and not cfg.peft.use_peft and not cfg.hrm.student_init:
        cfg.train.lr = FRESH_LR
        notes.say(f"a new brain trains at --lr {FRESH_LR:g} unless you pass --lr")
    from aios_tui.commands.arguments import note_ignored_peft_flags

    note_ignored_peft_flags(args, cfg.peft)
    for line in _notes(cfg):
        notes.say(line)
    return cfg


def _notes(cfg: RunConfig) -> list[str]:
    """Where a setting does not do on an HRM brain what it does elsewhere."""
    from aios_tui.config.targets import matches

    lines = []
    p = cfg.peft
    if p.use_peft and not cfg.hrm.lm_head_trainable:
        if any(matches("lm_head", t) for t in p.target_list()):
            lines.append("lm_head takes an adapter like the other targets; its own weights stay frozen "
                         "(AI-OS trains them in full: drop lm_head from --lora-target-modules and pass "
                         "--lm-head-trainable for that, at the cost of a much larger trainable share)")
        elif not any(matches("lm_head", m) for m in p.modules_to_save_list()):  # there it trains in full
            lines.append("lm_head stays frozen beside the adapter (AI-OS trains it; --lm-head-trainable does, "
                         "at the cost of a much larger trainable share)")
    if cfg.hrm.lm_head_trainable and not cfg.peft.use_peft:
        lines.append("--lm-head-trainable has no effect without --use-peft; the full model trains, "
                     "lm_head included")
    if cfg.model.attn_implementation != "sdpa":
        # HRM's blocks call scaled_dot_product_attention, which takes a flash kernel where it can
        lines.append(f"--attn-implementation {cfg.model.attn_implementation} has no effect on HRM ACTv1; "
                     "its attention is PyTorch's scaled_dot_product_attention")
    if cfg.peft.use_peft and not cfg.hrm.student_init:
        lines.append("--use-peft on a new brain trains adapters over random weights; PEFT is for "
                     "fine-tuning (start from a trained brain with --student-init BUNDLE)")
    return lines


def _refuse_a_run_of_another_task(run_dir: str) -> None:
    """A run trained by `aios-tui train` resumes there: loading its checkpoint into a brain fails
    only after the run's status has been taken over."""
    from aios_tui.engine.checkpoint import read_meta
    from aios_tui.engine.hrm.task import HRMTask
    from aios_tui.engine.task import load_task
    from aios_tui.metrics.rundir import RunDir

    latest = RunDir(run_dir).latest_checkpoint()
    if latest is None:
        return  # the resume itself says what is missing
    if not isinstance(load_task(read_meta(latest).get("task")), HRMTask):
        raise UserError(f"--resume {run_dir}: this run was started by `aios-tui train`, not "
                        f"`aios-tui train-actv1`; continue it with `aios-tui train --resume {run_dir}`")


def run(args: argparse.Namespace) -> int:
    from aios_tui import notes

    # as for `train`: a refused start prints its errors alone
    with notes.held():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    check_conflicts(args)
    if args.resume:
        from aios_tui.commands.arguments import run_path

        args.resume = run_path(args.resume)
        _refuse_a_run_of_another_task(args.resume)
    if args.stop_after is not None and args.stop_after < 1:
        raise ConfigError([f"--stop-after: {args.stop_after} is out of range; valid: at least 1"])
    cfg = resolve_config(args)
    if args.merge_adapter is not None:   # --check refuses it as a start does
        _check_merge_place(args.merge_adapter, cfg)
    if args.check:
        from aios_tui.commands.train import check_only

        return check_only(args, cfg)
    if args.detach:
        from aios_tui.commands.train import _detach

        if args.merge_adapter is not None:
            raise UserError("--merge-adapter runs in the foreground only; drop --detach, or merge "
                            "the finished bundle later with `aios-tui export BUNDLE --merge`")

        return _detach(args, cfg)

    from aios_tui.engine.hrm.task import HRMTask

    task = HRMTask()
    return train_in_foreground(args, cfg, task, lambda result: finish_bundle(task, result, args.merge_adapter))


def _check_merge_place(name: str, cfg: RunConfig) -> None:
    """--merge-adapter's bundle, refused before training rather than after it."""
    from aios_tui.config.validate import PLAIN_NAME_RULE, is_plain_name
    from aios_tui.engine import session
    from aios_tui.engine.hrm.bundle import merge_destination_problem
    from aios_tui.engine.hrm.task import brain_dir

    if not cfg.peft.use_peft:
        raise UserError("--merge-adapter: this run trains the full model, so there is no adapter "
                        "to merge; add --use-peft or drop --merge-adapter")
    if name and not is_plain_name(name):
        raise UserError(f"--merge-adapter: {name!r} is not a plain name ({PLAIN_NAME_RULE}); "
                        "the merged bundle goes beside the brain, in --bundle-dir")
    src = brain_dir(cfg, session.choose_run_dir(cfg, "train-actv1").name)
    problem = merge_destination_problem(src, src.parent / (name or f"{src.name}-merged"))
    if problem:
        raise UserError(f"--merge-adapter: {problem}")


def finish_bundle(task, result, merge_adapter: str | None = None) -> None:
    """After a session of a brain run: complete the bundle's metrics and say where it is (or
    why there is none yet); with ``merge_adapter``, also write the merged bundle."""
    from aios_tui.engine.hrm.bundle import merge_bundle, refresh_metrics

    if task.bundle is None:
        # the merge waits for the bundle: the resume that writes it must be asked for it again
        merge = "" if merge_adapter is None else " --merge-adapter" + (f" {merge_adapter}" if merge_adapter else "")
        print(f"no brain bundle written yet: the run stopped at step {result.step}; "
              f"`aios-tui train-actv1 --resume {result.run_dir}{merge}` finishes it and writes the bundle"
              + (" and its merged copy" if merge else ""))
        return
    refresh_metrics(task.bundle, task.metrics_file, str(result.run_dir.resolve()))
    print(f"brain bundle: {task.bundle}")
    if merge_adapter is not None:
        name = merge_adapter or f"{task.bundle.name}-merged"
        merged = merge_bundle(task.bundle, task.bundle.parent / name)
        print(f"merged bundle: {merged}")
