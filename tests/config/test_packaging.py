"""The shipped presets travel inside the package, so a plain (non-editable) install has them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import aios_tui

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (REPO / "presets").glob("*.toml"))


def test_the_package_sees_the_top_level_presets():
    inside = Path(aios_tui.__file__).parent / "presets"
    assert sorted(p.name for p in inside.glob("*.toml")) == SHIPPED
    assert len(SHIPPED) == 5


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                    reason="building a wheel offline needs setuptools in this environment")
def test_a_built_wheel_holds_every_shipped_preset(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path), str(REPO)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("aios_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("aios_tui/presets/")) == SHIPPED


def test_an_installed_copy_finds_its_presets_without_the_checkout(tmp_path):
    # What a wheel install looks like: the package directory alone, presets inside it.
    import shutil

    pkg = tmp_path / "site" / "aios_tui"
    shutil.copytree(Path(aios_tui.__file__).parent, pkg, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import aios_tui.config.presets as p; "
            "print(p.shipped_dir()); print(','.join(x.key for x in p.list_presets()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin",
                                             "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    where, keys = proc.stdout.splitlines()
    assert Path(where) == pkg / "presets"
    assert sorted(keys.split(",")) == sorted(Path(n).stem for n in SHIPPED)
