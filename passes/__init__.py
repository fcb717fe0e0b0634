"""cimc's passes, one per file; `PASSES` registers every one by its pipeline name."""

from cimc.passes.cost import CostPass
from cimc.passes.duplicate import DuplicatePass
from cimc.passes.lower import LowerPass
from cimc.passes.pack import PackPass
from cimc.passes.partition import PartitionPass
from cimc.passes.place import PlacePass
from cimc.passes.schedule import SchedulePass

PASSES = {p.name: p for p in (LowerPass, PartitionPass, DuplicatePass, PackPass, PlacePass, SchedulePass, CostPass)}

__all__ = ["PASSES", "LowerPass", "PartitionPass", "DuplicatePass", "PackPass", "PlacePass", "SchedulePass", "CostPass"]
