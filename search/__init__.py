"""cimc.search: the joint network + hardware search with the compiler in the loop.

    from cimc import search
    space = search.Space.from_toml("space.toml")            # or search.Space(network=..., hardware=...)
    result = search.run(space, trials=200, seed=0, out="runs/x")
    for p in result.pareto(): print(p.config, p.metrics, p.onnx_path, p.mapping_path)

Imports only cimc's public API; the core never imports this package. Needs torch and optuna
(pip install 'cimc[search]'); names load on first use, so `cimc.search.cli` (the `cimc`
command) starts without them.
"""

import importlib

_EXPORTS = {
    "Space": "space", "Chip": "space", "METRICS": "space",
    "run": "engine",
    "Family": "families", "Shape": "families",
    "Train": "evaluators", "Supernet": "evaluators", "Callback": "evaluators", "Untrained": "evaluators",
    "Evaluator": "evaluators", "SearchData": "evaluators",
    "Knob": "knobs", "SpaceError": "knobs",
    "Point": "results", "Result": "results", "show": "results",
}
__all__ = sorted(_EXPORTS) + ["families"]


def __getattr__(name):
    if name == "families":
        return importlib.import_module("cimc.search.families")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cimc.search.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cimc.search' has no attribute '{name}'")
