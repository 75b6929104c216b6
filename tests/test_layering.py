"""The layering rule: ``detectors/`` is pure compute and never imports the pipelines' world.

``detectors`` must run on a bare GPU box (torch, torchvision, onnxruntime, numpy, scipy), so
no module under it may import ``pipelines`` (which pulls GDAL through rasterio and Prefect),
``prefect`` or ``rasterio`` -- not even lazily inside a function. ``pipelines`` may import
``detectors``, never the reverse. Two checks, because each misses what the other sees:

* a static scan (``ast``) of every ``.py`` file, which also finds imports inside functions
  that only run on some code path (the training scripts import the generator lazily);
* a real import of the package in a fresh interpreter where those three top-level names
  cannot be imported at all, which catches what a scan cannot (an import hidden in a
  dependency chain, a module that fails to import for another reason).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DETECTORS = REPO / "detectors"
#: Top-level names no module under ``detectors/`` may import.
FORBIDDEN = ("pipelines", "prefect", "rasterio")


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def forbidden_imports(root: Path, forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    """``path:line: module`` for every import of a forbidden package in ``root``'s ``.py`` files.

    Walks the whole tree of each file, so imports inside functions, methods, ``try`` blocks
    and ``if TYPE_CHECKING`` count too; ``importlib.import_module("...")`` / ``__import__``
    with a literal name count as imports.
    """
    hits: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:  # relative imports stay inside detectors
                    names = [node.module]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                    names = [node.args[0].value]
            hits += [f"{path.relative_to(root.parent)}:{node.lineno}: {n}"
                     for n in names if _top(n) in forbidden]
    return hits


def test_no_module_under_detectors_imports_pipelines_prefect_or_rasterio() -> None:
    hits = forbidden_imports(DETECTORS)
    assert not hits, "detectors/ must not import " + "/".join(FORBIDDEN) + ":\n" + "\n".join(hits)


def test_the_scan_finds_every_kind_of_forbidden_import(tmp_path: Path) -> None:
    """The static check can fail: each spelling of a bad import in a scratch package is reported."""
    pkg = tmp_path / "detectors"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import numpy\nfrom . import sub\n")
    (pkg / "sub" / "__init__.py").write_text(textwrap.dedent("""\
        import rasterio.crs
        from pipelines.errors import SceneError

        def lazy():
            import prefect
            from pipelines import synth
            return prefect, synth

        class K:
            def m(self):
                import importlib
                return importlib.import_module("pipelines.scene")
        """))
    hits = forbidden_imports(pkg)
    assert [h.rsplit(": ", 1)[1] for h in hits] == [
        "rasterio.crs", "pipelines.errors", "prefect", "pipelines", "pipelines.scene"]
    assert forbidden_imports(pkg, forbidden=("scipy",)) == []


#: Run in a fresh interpreter: block the forbidden names, then import all of ``detectors``.
_IMPORT_WITH_BLOCKER = """
import importlib, importlib.abc, pkgutil, sys

FORBIDDEN = {forbidden!r}

class Blocker(importlib.abc.MetaPathFinder):
    '''Refuses the forbidden packages, as if they were not installed (a bare GPU box).'''

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"{{fullname}} is blocked: detectors/ must not import it",
                                      name=fullname)
        return None

for name in list(sys.modules):
    if name.split(".", 1)[0] in FORBIDDEN:
        del sys.modules[name]
sys.meta_path.insert(0, Blocker())

import detectors
import detectors.registry
detectors.registry.list_detectors()  # imports the built-in detector modules
names = ["detectors.training.train_sar", "detectors.synth.sar", "detectors.synth.optical"]
for pkg in ("detectors.sar", "detectors.fire"):
    mod = importlib.import_module(pkg)
    names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
for name in names:
    importlib.import_module(name)
leaked = sorted(n for n in sys.modules if n.split(".", 1)[0] in FORBIDDEN)
if leaked:
    raise SystemExit(f"forbidden modules loaded: {{leaked}}")
print("imported", len(names), "modules:", " ".join(sorted(names)))
"""


def test_detectors_import_where_pipelines_prefect_and_rasterio_are_missing() -> None:
    code = _IMPORT_WITH_BLOCKER.format(forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"importing detectors needs a forbidden package:\n{proc.stderr[-4000:]}", pytrace=False)
    for name in ("detectors.training.train_sar", "detectors.sar.cfar", "detectors.fire.learned"):
        assert name in proc.stdout.split(), proc.stdout
