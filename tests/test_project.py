"""Project set-up invariants: dependency declarations, README commands, CI entry point."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements() -> dict[str, Requirement]:
    return {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}


def test_torch_ranges_admit_the_gpu_and_cpu_environments_and_nothing_above_2_14_1():
    reqs = requirements()
    for torch_version, vision_version in [("2.11.0", "0.26.0"), ("2.14.1", "0.29.1")]:
        assert reqs["torch"].specifier.contains(torch_version), torch_version
        assert reqs["torchvision"].specifier.contains(vision_version), vision_version
    assert not reqs["torch"].specifier.contains("2.15.0")
    assert not reqs["torchvision"].specifier.contains("0.30.0")


def test_core_packages_are_declared():
    declared = set(requirements())
    assert {"torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "tqdm", "pillow"} <= declared
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {Requirement(r).name for r in extras["lab"]} >= {"jupyterlab", "ipywidgets"}
    assert {Requirement(r).name for r in extras["dev"]} >= {"pytest", "pytest-timeout"}


def test_environment_yml_is_a_thin_wrapper_of_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert sorted(conda) == ["pip", "python=3.11"]
    assert pip == [{"pip": ["-e .[dev,lab]"]}]
    required = PYPROJECT["project"]["requires-python"]
    assert Requirement(f"python{required}").specifier.contains(Version("3.11"))
    assert set(PYPROJECT["project"]["optional-dependencies"]) >= {"dev", "lab"}


def test_readme_shows_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    setup = [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert setup == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, flags=re.M)


def test_console_entry_point_is_declared():
    assert PYPROJECT["project"]["scripts"]["qmvos-lab"] == "qmvos_lab.cli:main"
