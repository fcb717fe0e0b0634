"""Regenerate the golden *.in.cim inputs (run from the repository root):

    .venv/bin/python tests/make_golden_inputs.py

The expected outputs are written by the golden test with CIMC_UPDATE_GOLDEN=1.
"""

from pathlib import Path

import cimc
from cimc.frontend import import_onnx
from cimc.targets import load_target

import onnx_builders as ob

HERE = Path(__file__).parent / "golden"
# small crossbars so that layers split into several blocks
SMALL = load_target("rram-128", {"xbar_rows": 16, "xbar_cols": 32, "xbars_per_tile": 4, "tiles": 16})

CASES = {
    # name: (passes, module-producing function)
    "lower": ("lower", lambda: import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn")),
    "partition": ("partition", lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"), "lower").module),
    "partition_serial": ("partition{grouped=serial}",
                         lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"), "lower").module),
    "partition_per_group": ("partition{grouped=per-group}",
                            lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"), "lower").module),
    "place": ("place", lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"), "lower,partition").module),
    "duplicate": ("duplicate{budget=24}",
                  lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"), "lower,partition").module),
    "pack": ("pack", lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"),
                                      "lower,partition,duplicate{budget=24}").module),
    "schedule": ("schedule{inferences=2}", lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"),
                                                           "lower,partition,duplicate{budget=24},pack").module),
    "cost": ("cost", lambda: cimc.opt(import_onnx(ob.tiny_cnn(), SMALL, name="tiny_cnn"),
                                      "lower,partition,place").module),
}

if __name__ == "__main__":
    for name, (passes, make) in CASES.items():
        m = make().with_ops(make().ops, source="tiny_cnn.onnx")
        (HERE / f"{name}.in.cim").write_text(f"// passes: {passes}\n" + cimc.print_module(m))
        print("wrote", HERE / f"{name}.in.cim")
