"""cimc: a compiler for RRAM compute-in-memory accelerators.

    import cimc
    r = cimc.compile("model.onnx", target="rram-256", xbar_rows=128)
    print(r.latency_ns, r.energy_nj, r.area_mm2, r.utilization)
    r.save("model.cim")
"""

from cimc.api import Result, compile, import_model, opt, report
from cimc.errors import (
    CimcError,
    Infeasible,
    MappingSyntaxError,
    ModelError,
    TargetError,
    VerifyError,
)
from cimc.frontend import export_torch as export_onnx
from cimc.ir import Module, Op
from cimc.targets import Target, load_target, preset_names
from cimc.text import parse, parse_file, print_module
from cimc.verify import verify

__version__ = "0.1.0"

__all__ = [
    "compile", "import_model", "export_onnx", "opt", "report", "Result", "Module", "Op", "Target", "load_target", "preset_names",
    "parse", "parse_file", "print_module", "verify",
    "CimcError", "Infeasible", "MappingSyntaxError", "ModelError", "TargetError", "VerifyError",
]
