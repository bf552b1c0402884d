"""Shared fixtures: where the repository and its shipped protocols are. Keep this file minimal."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS_DIR = REPO_ROOT / "protocols"
ANAKINRA = PROTOCOLS_DIR / "anakinra_hepatotoxicity.rxw"
LEFLUNOMIDE = PROTOCOLS_DIR / "leflunomide_hepatotoxicity.rxw"
TOCILIZUMAB = PROTOCOLS_DIR / "tocilizumab_monitoring.rxw"
SHIPPED_PROTOCOLS = tuple(sorted(PROTOCOLS_DIR.glob("*.rxw")))  # every protocol in protocols/


def bench_module(name: str):
    """A script of bench/ (not a package) loaded as a module, for tests of what it generates."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"rxwatch_bench_{name}", REPO_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def anakinra_path() -> Path:
    return ANAKINRA


@pytest.fixture(scope="session")
def leflunomide_path() -> Path:
    return LEFLUNOMIDE


@pytest.fixture(scope="session", params=SHIPPED_PROTOCOLS, ids=lambda p: p.stem)
def shipped_protocol(request) -> Path:
    """Each protocol in protocols/, in turn."""
    return request.param
