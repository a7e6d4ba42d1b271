"""Out of GPU memory outside training (loading a model beside a run that holds the GPU, sampling a
long answer) is one line, not torch's traceback; a generate session goes on after it."""

from __future__ import annotations

import pytest
import torch

from aios_tui.errors import UserError


def oom(*_a, **_k):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 1 GiB free")


def test_a_command_that_runs_out_of_gpu_memory_says_so_in_one_line(monkeypatch, capsys):
    from aios_tui import cli
    from aios_tui.commands import export

    monkeypatch.setattr(export, "run", oom)
    assert cli.main(["export", "somewhere"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("aios-tui: error: out of GPU memory (CUDA out of memory. Tried to allocate "
                                 "2.00 GiB.); free the GPU (`aios-tui gpu` shows who holds it) or use "
                                 "--device cpu\n")


def test_other_runtime_errors_are_not_taken_for_it(monkeypatch):
    from aios_tui import cli
    from aios_tui.commands import export

    def broken(*_a, **_k):
        raise RuntimeError("something else")

    monkeypatch.setattr(export, "run", broken)
    with pytest.raises(RuntimeError, match="something else"):
        cli.main(["export", "somewhere"])


def test_sampling_out_of_gpu_memory_is_a_refusal_the_session_survives(monkeypatch):
    from aios_tui.engine.generate import Loaded, Sampling

    loaded = Loaded(model=None, tokenizer=None, hrm=False)
    monkeypatch.setattr(Loaded, "_sample_hf", oom)
    with pytest.raises(UserError) as err:
        loaded.sample([1, 2, 3], Sampling(max_new_tokens=512))
    assert err.value.problems == ["out of GPU memory sampling 512 tokens; ask for fewer (--max-new-tokens), "
                                  "free the GPU (`aios-tui gpu` shows who holds it) or use --device cpu"]
