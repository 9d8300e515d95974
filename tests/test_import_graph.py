"""The package's modules import one another without a cycle, counting the
imports inside functions too (WORKSPACE.md, "Layout")."""
import ast
import graphlib
import os

from conftest import ROOT

PACKAGE = "ntm_jax"


def _modules(root: str, package: str) -> dict:
  """Dotted module name -> its source path, for every module of the package."""
  modules = {}
  for folder, _, files in os.walk(os.path.join(root, package)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
        modules[dotted.removesuffix(".__init__")] = path
  return modules


def import_graph(root: str = ROOT, package: str = PACKAGE) -> dict:
  """Module -> the package's modules it imports, anywhere in its source.

  An import of the module's own package or the top package is left out: a
  package's __init__ re-exports its children, so such an edge is a cycle
  only in name."""
  modules = _modules(root, package)
  graph = {}
  for module, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read())
    targets = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        targets.add(node.module)
        targets.update(f"{node.module}.{alias.name}" for alias in node.names)
    graph[module] = {t for t in targets & modules.keys()
                     if t != module and t != package and not module.startswith(t + ".")}
  return graph


def test_the_graph_sees_imports_at_module_level_and_inside_functions():
  graph = import_graph()
  assert "ntm_jax.models" in graph["ntm_jax.training.step"]  # `from ntm_jax import models`
  assert "ntm_jax.runs.engine" in graph["ntm_jax.api"]  # inside train_seeds
  assert "ntm_jax.models.heads" in graph["ntm_jax.models"]  # a package's own child


def _cycle(graph: dict):
  """The modules of one import cycle, or None."""
  try:
    list(graphlib.TopologicalSorter(graph).static_order())  # a generator: run it
  except graphlib.CycleError as error:
    return error.args[1]
  return None


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
  (tmp_path / "pkg").mkdir()
  (tmp_path / "pkg" / "__init__.py").write_text("from pkg import a\n")
  (tmp_path / "pkg" / "a.py").write_text("import pkg.b\n")
  (tmp_path / "pkg" / "b.py").write_text("import pkg\n\ndef f():\n  from pkg import a\n")
  graph = import_graph(str(tmp_path), "pkg")
  assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
  assert set(_cycle(graph)) == {"pkg.a", "pkg.b"}


def test_the_package_has_no_import_cycle():
  cycle = _cycle(import_graph())
  assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
