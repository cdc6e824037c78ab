"""The import rule of the package (stated in cyclegan/__init__.py), checked on the source of every module.

Parsed with ``ast``, so nothing is imported: the rule holds for code paths a test never runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cyclegan"

# package -> the packages it may import besides itself and the shared layer
ALLOWED = {
    "cyclegan.models": set(),
    "cyclegan.data": set(),
    "cyclegan.inference": {"cyclegan.models"},
    "cyclegan.evaluation": {"cyclegan.inference", "cyclegan.models", "cyclegan.data"},
    "cyclegan.app": {"cyclegan.inference", "cyclegan.models"},
}
# Third-party modules that may be imported inside a function, and why (everything else at the top).
LAZY_OK = {
    "onnx": "optional (the [export] extra)",
    "gradio": "optional (the [app] extra); imported after the app has set where it writes",
    "torch_fidelity": "optional Inception backend",
    "torchmetrics": "about a second to import; only FID and SSIM need it",
    "matplotlib": "slow to import; only the loss plot needs it",
    "wandb": "slow to import; only logger=wandb needs it",
    "pytorch_lightning": "seconds to import: translate and compare start without it",
    "lightning_fabric": "as pytorch_lightning",
    "hydra": "its runtime state exists only inside a Hydra app",
    "torch": "submodules (profiler, flop counter) loaded for the one bench mode that uses them",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "sample" in rel.parts:  # the bundled sample images' maker script
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


MODULES = _modules()
# The shared layer under the stages (cyclegan.common and the config helpers every stage reads):
# may be used by every package, uses nothing above it.
SHARED = {m for m in MODULES if m == "cyclegan.common" or m.startswith("cyclegan.common.")} | {
    "cyclegan.config.hydra_run", "cyclegan.config.resolvers", "cyclegan.config"}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import statement of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    lazy_nodes = {id(sub) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for sub in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in lazy_nodes) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found += [(n, id(node) in lazy_nodes) for n in (names or [target])]
    return found


def _internal(module: str) -> set[str]:
    deps = set()
    for name, _ in _imports(module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != "cyclegan" and name != module:
            deps.add(name)
    return deps


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_module_list_is_what_the_rule_talks_about():
    assert {"cyclegan.inference.checkpoint", "cyclegan.evaluation.metrics", "cyclegan.training.run",
            "cyclegan.gan.module", "cyclegan.common.errors", "cyclegan.common.imaging"} <= set(MODULES)


def test_each_stage_imports_only_what_the_rule_allows():
    bad = []
    for module in MODULES:
        allowed = ALLOWED.get(_package(module))
        if allowed is None and module not in SHARED:
            continue
        for dep in _internal(module):
            if dep in SHARED or _package(dep) == _package(module):
                continue
            if module in SHARED or _package(dep) not in allowed:
                bad.append(f"{module} imports {dep}")
    assert bad == []


def test_nothing_imports_training():
    bad = [f"{m} imports {d}" for m in MODULES if _package(m) != "cyclegan.training"
           for d in _internal(m) if _package(d) == "cyclegan.training"]
    assert bad == []


def test_there_are_no_import_cycles():
    graph = {m: _internal(m) for m in MODULES}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_lazy_imports_are_only_for_heavy_or_optional_packages():
    bad = [f"{m}: {name}" for m in MODULES for name, lazy in _imports(m)
           if lazy and name.split(".")[0] not in LAZY_OK]
    assert bad == []
