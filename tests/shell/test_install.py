"""A regular (non-editable) install: the wheel carries the default config files and finds them.

The repo keeps one copy of ``config/channelflow.toml`` and ``config/promotions.toml``;
``pyproject.toml`` installs that folder as the package ``channelflow.defaults``. An editable
install (the project's venv) reads them where they are, so only a wheel shows whether they ship.

The wheel is built with ``pip wheel --no-deps`` (no ``build`` dependency) from a copy of what the
Dockerfile copies into its image before ``pip install .``, so a file the image lacks is missed
here too and the repo gets no ``build/`` folder. It goes into a fresh venv (no
``--system-site-packages``) with its dependencies from the package index, as the image installs
it: that took 17 s here (under the 3 minutes allowed before falling back to ``--no-deps`` on
top of the project's packages), so this test needs the index the project's venv was installed
from. ``channelflow`` then runs from a directory outside the repo with no ``CHANNELFLOW_*``
variables set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the Dockerfile copies into the image before ``pip install .``.
SOURCES = ("pyproject.toml", "README.md", "channelflow", "flows", "operators", "config")
#: The import packages of the project, as folders of Python files.
PACKAGE_ROOTS = ("channelflow", "flows", "operators")
DEFAULTS = ("channelflow.toml", "promotions.toml")


def _run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env() -> dict[str, str]:
    """The environment without ``CHANNELFLOW_*``, ``PYTHON*`` or an active venv (pip's settings stay)."""
    drop = ("CHANNELFLOW_", "PYTHON", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = tmp_path_factory.mktemp("context")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, context / name)
    dist = tmp_path_factory.mktemp("dist")
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, context], context, _clean_env()))
    (built,) = dist.glob("channelflow-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel and its dependencies installed; returns its ``bin`` folder."""
    home = tmp_path_factory.mktemp("venv")
    env = _clean_env()
    _ok(_run([sys.executable, "-m", "venv", home], home, env))
    bin_dir = home / ("Scripts" if os.name == "nt" else "bin")
    _ok(_run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], home, env))
    return bin_dir


def _packages_in_the_repo() -> set[str]:
    """Every folder of ``.py`` files under the package roots, as a dotted name."""
    return {
        ".".join(module.parent.relative_to(ROOT).parts)
        for root in PACKAGE_ROOTS
        for module in (ROOT / root).rglob("*.py")
        if "__pycache__" not in module.parts
    }


def test_pyproject_lists_every_package() -> None:
    """Fast (no build): ``[tool.setuptools] packages`` is a list, so a new package must be added to it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    missing = _packages_in_the_repo() - listed
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    assert listed - _packages_in_the_repo() == {"channelflow.defaults"}


@pytest.mark.slow
def test_the_wheel_has_every_package_and_the_defaults(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in DEFAULTS:
            assert archive.read(f"channelflow/defaults/{name}") == (ROOT / "config" / name).read_bytes()
    assert "channelflow/defaults/__init__.py" in names
    # Nothing else of config/ (grafana, prometheus) and no top-level `config` package.
    assert {n for n in names if n.startswith("channelflow/defaults/")} == {
        "channelflow/defaults/__init__.py",
        *(f"channelflow/defaults/{name}" for name in DEFAULTS),
    }
    assert not any(n.startswith("config/") for n in names)
    # pyproject.toml lists its packages: one left out of the list would be left out of the wheel.
    for root in PACKAGE_ROOTS:
        for module in (ROOT / root).rglob("*.py"):
            if "__pycache__" not in module.parts:
                assert module.relative_to(ROOT).as_posix() in names, f"{module} is not in the wheel"


@pytest.mark.slow
def test_check_config_reads_the_defaults_inside_the_installed_package(venv: Path, tmp_path: Path) -> None:
    env = _clean_env()
    where = _ok(_run(
        [venv / "python", "-c",
         "import sysconfig; from channelflow.config import DEFAULT_CONFIG as c, DEFAULT_PROMOTIONS as p; "
         "print(sysconfig.get_paths()['purelib']); print(c); print(p)"],
        tmp_path, env,
    ))
    site_packages, config, promotions = (Path(line) for line in where.splitlines())
    assert config == site_packages / "channelflow" / "defaults" / "channelflow.toml"
    assert promotions == site_packages / "channelflow" / "defaults" / "promotions.toml"
    assert venv.parent in site_packages.parents

    out = _ok(_run([venv / "channelflow", "check-config"], tmp_path, env))
    assert f"# config: {config}\n" in out
    assert f"# promotions: {promotions}\n" in out
    assert str(ROOT) not in out


@pytest.mark.slow
def test_an_explicit_file_still_wins_over_the_defaults(venv: Path, tmp_path: Path) -> None:
    repo_config, repo_promotions = ROOT / "config" / "channelflow.toml", ROOT / "config" / "promotions.toml"
    # -c before or after the command.
    out = _ok(_run([venv / "channelflow", "-c", repo_config, "check-config"], tmp_path, _clean_env()))
    assert f"# config: {repo_config}\n" in out
    out = _ok(_run([venv / "channelflow", "check-config", "-c", repo_config], tmp_path, _clean_env()))
    assert f"# config: {repo_config}\n" in out

    env = {**_clean_env(), "CHANNELFLOW_CONFIG": str(repo_config), "CHANNELFLOW_PROMOTIONS": str(repo_promotions)}
    out = _ok(_run([venv / "channelflow", "check-config"], tmp_path, env))
    assert f"# config: {repo_config}\n" in out
    assert f"# promotions: {repo_promotions}\n" in out
