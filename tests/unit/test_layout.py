"""One import identity per module (issue 13 item 4): the repository's top-level folders are
gridhpo's subpackages, reached through the links in gridhpo/, and nothing else."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBPACKAGES = sorted(p.name for p in (REPO / "gridhpo").iterdir() if p.is_symlink())


def _python(code: str) -> subprocess.CompletedProcess[str]:
    # from the repository root, where a bare `import steering` would find the folder
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_every_link_in_gridhpo_is_a_top_level_package() -> None:
    assert {"steering", "evaluation", "protocol", "bookkeeping", "checkpoints", "cli", "plots"} <= set(SUBPACKAGES)
    for name in SUBPACKAGES:
        assert (REPO / "gridhpo" / name).resolve() == (REPO / name).resolve()
        assert (REPO / name / "__init__.py").is_file()


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_a_top_level_folder_is_not_importable_under_its_own_name(name: str) -> None:
    bare = _python(f"import {name}")
    assert bare.returncode != 0
    assert f"ImportError: import gridhpo.{name}, not {name}" in bare.stderr
    assert _python(f"import gridhpo.{name}").returncode == 0


def test_a_module_has_one_identity_however_it_is_reached() -> None:
    # a submodule imported by its bare dotted name fails before it can be a second copy
    out = _python("import gridhpo.steering.service as a\n"
                  "try:\n    import steering.service\nexcept ImportError as e:\n    print('refused', e)\n"
                  "import sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'steering'))")
    assert out.returncode == 0, out.stderr
    assert "refused import gridhpo.steering, not steering" in out.stdout
    assert out.stdout.strip().endswith("[]")


def test_ruff_lints_every_source_file_once_at_its_real_path() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed beside this Python (it is in the test extra)")
    shown = subprocess.run([str(ruff), "check", "--show-files", "."], cwd=REPO, capture_output=True, text=True,
                           timeout=120, check=True).stdout.split()
    files = [Path(f).resolve() for f in shown if f.endswith(".py")]
    assert len(files) == len(set(files))
    for name in SUBPACKAGES:
        assert (REPO / name / "__init__.py").resolve() in files
