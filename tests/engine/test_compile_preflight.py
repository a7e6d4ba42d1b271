"""--torch-compile on CUDA is refused up front when Triton or a C compiler is missing."""

from __future__ import annotations

from aios_tui.config import resolve
from aios_tui.engine.preflight import compile_problems


def test_nothing_to_check_off_cuda_or_without_compile():
    assert compile_problems(resolve(overrides={"torch_compile": True}), "cpu") == []
    assert compile_problems(resolve(overrides={"torch_compile": False}), "cuda") == []


def test_missing_compiler_or_triton_or_headers_is_one_clear_line(monkeypatch, tmp_path):
    import importlib.util
    import shutil

    cfg = resolve(overrides={"torch_compile": True})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "triton"
                        else real_find_spec(name, *a))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    (problem,) = compile_problems(cfg, "cuda")
    assert problem.startswith("train.torch_compile: no C compiler") and "--torch-compile off" in problem
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton"
                        else real_find_spec(name, *a))
    (problem,) = compile_problems(cfg, "cuda")
    assert "Triton is not installed" in problem
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    from aios_tui.engine import preflight

    headers = tmp_path / "Python.h"
    monkeypatch.setattr(preflight, "python_headers", lambda: headers)
    (problem,) = compile_problems(cfg, "cuda")
    assert "Python headers are missing" in problem and "python3-dev" in problem
    headers.touch()
    assert compile_problems(cfg, "cuda") == []
