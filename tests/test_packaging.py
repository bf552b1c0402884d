"""Packaging: a real wheel (not the editable install) has every module under rxwatch/, ships the
grammar, puts nothing named `compiler` or `cli` in site-packages, installs and runs.

The wheel is built from a copy of the sources (the package folders that pyproject.toml maps, and
pyproject.toml itself) so that the build leaves nothing in the working tree and a stale build/
folder cannot leak into it. It is installed with --no-deps into a fresh venv whose dependencies
come from the current environment, minus rxwatch itself.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import ANAKINRA, REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
NAME = PYPROJECT["project"]["name"]
VERSION = PYPROJECT["project"]["version"]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def copy_sources(dest: Path) -> None:
    """pyproject.toml, the top files it may read, and every mapped package folder."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "MANIFEST.in", "setup.py", "setup.cfg"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, dest / name)
    top = {d.split("/")[0] for d in PACKAGE_DIR.values()}
    for folder in sorted(top):
        shutil.copytree(REPO_ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def can_build_without_isolation() -> bool:
    """setuptools >= 70.1 has bdist_wheel built in; older ones need the `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def build_wheel(src: Path, out: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if can_build_without_isolation():
        cmd.insert(4, "--no-build-isolation")
    # otherwise pip fetches the build requirements (setuptools, wheel) into an isolated
    # environment, as `make setup`'s `pip install .` does
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=src, env=clean_env())
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    copy_sources(tmp / "src")
    return build_wheel(tmp / "src", tmp / "dist")


def expected_files() -> set[str]:
    """rxwatch/... for every module and data file of the mapped folders (sub-folders included)."""
    want = set()
    for pkg, folder in PACKAGE_DIR.items():
        if "/" in folder:  # a sub-folder of a mapped folder: covered by the walk below
            continue
        base = REPO_ROOT / folder
        for path in base.rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            rel = path.relative_to(base)
            if path.suffix == ".py" or path.suffix == ".lark" or "assets" in rel.parts:
                want.add("/".join([*pkg.split("."), *rel.parts]))
    return want


def test_wheel_has_every_module_and_the_grammar_and_nothing_else_at_the_top(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rxwatch/grammar/protocol.lark" in names
    assert "rxwatch/compiler/parser.py" in names and "rxwatch/cli/main.py" in names
    missing = expected_files() - names
    assert missing == set(), f"in the source tree but not in the wheel (a package missing from pyproject's list?): {sorted(missing)}"
    top = {n.split("/")[0] for n in names}
    assert top == {"rxwatch", f"{NAME}-{VERSION}.dist-info"}, top
    assert not any(n.startswith(("compiler/", "cli/", "tests/", "build/")) for n in names)


def test_wheel_declares_the_console_script_and_dependencies(wheel):
    z = zipfile.ZipFile(wheel)
    dist_info = f"{NAME}-{VERSION}.dist-info"
    entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
    assert "rxwatch = rxwatch.cli.main:run" in entry_points
    metadata = z.read(f"{dist_info}/METADATA").decode()
    for dep in PYPROJECT["project"]["dependencies"]:
        name = dep.split(">")[0].split("=")[0].split("<")[0].strip()
        assert f"Requires-Dist: {name}" in metadata, dep


def dependencies_view(dest: Path) -> Path:
    """A folder of links to the current environment's installed packages, minus rxwatch itself
    (neither its editable hook nor an installed copy may shadow the wheel under test)."""
    dest.mkdir()
    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    for d in sorted(dirs):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            name = entry.name
            if name.lower().startswith(("rxwatch", "__editable__")) or name.endswith(".pth") or name == "__pycache__":
                continue
            link = dest / name
            if not link.exists():
                link.symlink_to(entry.path)
    return dest


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True, env=clean_env()
    ).stdout.strip()
    deps = dependencies_view(tmp / "deps")
    # appended after the venv's own site-packages: the wheel's rxwatch comes first, and alone
    Path(purelib, "_current_env_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env_dir


def test_installed_wheel_runs_check_from_outside_the_repo(venv, tmp_path):
    proc = subprocess.run(
        [str(venv / "bin" / "rxwatch"), "check", str(ANAKINRA)], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "checked 1 protocol: 0 errors" in proc.stderr


def test_installed_wheel_prints_its_version(venv, tmp_path):
    proc = subprocess.run([str(venv / "bin" / "rxwatch"), "--version"], capture_output=True, text=True, cwd=tmp_path,
                          env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert proc.stdout.startswith(f"rxwatch {version} (compiles to rxwatch-graph/")


def test_installed_wheel_compiles_and_reports_errors(venv, tmp_path):
    out = tmp_path / "g.json"
    proc = subprocess.run(
        [str(venv / "bin" / "rxwatch"), "compile", str(ANAKINRA), "-o", str(out)], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 1000
    bad = tmp_path / "bad.rxw"
    bad.write_text("protocol p\ninitial state a {\n  on panel { when x > > 1 stay }\n}\n", encoding="utf-8")
    proc = subprocess.run([str(venv / "bin" / "rxwatch"), "check", str(bad)], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120)
    assert proc.returncode == 1
    assert "error[E101]" in proc.stderr


def test_installed_modules_come_from_the_wheel_and_no_compiler_or_cli_is_importable(venv, tmp_path):
    script = (
        "import importlib.util, json, rxwatch, rxwatch.compiler, rxwatch.cli.main, rxwatch.grammar\n"
        "from importlib import resources\n"
        "print(json.dumps({\n"
        "  'rxwatch': list(rxwatch.__path__),\n"
        "  'compiler': rxwatch.compiler.__file__,\n"
        "  'grammar': str(resources.files('rxwatch.grammar').joinpath('protocol.lark')),\n"
        "  'bare_compiler': importlib.util.find_spec('compiler') is not None,\n"
        "  'bare_cli': importlib.util.find_spec('cli') is not None,\n"
        "}))\n"
    )
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    info = json.loads(proc.stdout)
    root = str(venv.resolve())
    assert [str(Path(p).resolve()).startswith(root) for p in info["rxwatch"]] == [True]
    assert str(Path(info["compiler"]).resolve()).startswith(root)
    assert Path(info["grammar"]).is_file() and str(Path(info["grammar"]).resolve()).startswith(root)
    assert not info["bare_compiler"] and not info["bare_cli"]
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, env=clean_env()).stdout.strip())
    assert not (purelib / "compiler").exists() and not (purelib / "cli").exists()
