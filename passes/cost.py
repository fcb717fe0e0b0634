"""cost: write each layer's cost into the mapping as `cost.layer` ops.

The figures come from `cimc.cost.evaluate` (see its docstring for the model); writing
them into the text lets a user read and diff what a mapping costs. Old cost ops are
replaced, so the pass can run again after the mapping is edited.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimc.cost import evaluate
from cimc.ir import Module, Op
from cimc.report import Report


@dataclass(frozen=True)
class CostPass:
    name = "cost"

    def run(self, module: Module) -> Module:
        return self.run_with_report(module)[0]

    def run_with_report(self, module: Module) -> tuple[Module, Report]:
        """The module with its cost ops, and the report they come from (the pipeline keeps it
        for `compile`, which then does not cost the mapping again)."""
        module = module.with_ops([op for op in module.ops if op.namespace != "cost"])
        report = evaluate(module)
        cost_ops = []
        for layer in report.layers:
            if layer.crossbars == 0 and layer.rows == 0:
                continue
            cost_ops.append(Op.make("cost.layer", None, [layer.name], latency_ns=float(layer.latency_ns),
                                    energy_nj=float(layer.energy_nj), crossbars=layer.crossbars,
                                    copies=layer.copies, blocks=layer.blocks))
        return module.with_ops(list(module.ops) + cost_ops), report
