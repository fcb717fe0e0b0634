"""cimc's passes, one per file; `PASSES` registers every one by its pipeline name."""

from cimc.passes.cost import CostPass
from cimc.passes.lower import LowerPass
from cimc.passes.partition import PartitionPass
from cimc.passes.place import PlacePass

PASSES = {p.name: p for p in (LowerPass, PartitionPass, PlacePass, CostPass)}

__all__ = ["PASSES", "LowerPass", "PartitionPass", "PlacePass", "CostPass"]
