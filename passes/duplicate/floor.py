"""The period floor: copies that make crossbars faster than the tiles' digital units can keep up
with buy nothing, and are cut back."""

from __future__ import annotations

from cimc.cost import period_floor_ns
from cimc.cost.timing import digital_ns, digital_ops, tiles_for_digital
from cimc.ir import Module
from cimc.passes.duplicate.infos import LayerInfo


def digital_keeps_up(module: Module):
    """For compact copies (every block a crossbar, filling tiles in order): given a period,
    the cells of the fewest crossbars whose tiles' digital units do the digital work of an
    inference within it. Fewer would make the digital units set the period."""
    t = module.target
    digital = digital_ops(module)

    def least(period_ns: float) -> int:
        if not digital or period_ns <= 0:
            return 0
        tiles = tiles_for_digital(t, digital, period_ns)
        return tiles * t.xbars_per_tile_all * t.cells_per_xbar

    return least


def no_faster_than_the_floor(module: Module, infos: list[LayerInfo], copies: dict, goal_ns: float, facts: dict,
                              compact: bool = False):
    """Copies that make the crossbars faster than the period's floor (buffer traffic,
    digital units: `period_floor_ns`) buy nothing: each layer keeps the fewest copies
    that still meet the floor, and the floor becomes the target. Compact copies are not
    placed: their crossbars fill tiles in order, so fewer crossbars are fewer tiles'
    digital units; there the copies stay when cutting them would make those the slower."""
    t = module.target
    floor = period_floor_ns(module)
    if goal_ns >= floor:
        return copies, goal_ns, facts
    fewer = {}
    for i in infos:
        per_copy = max(1, int(floor // i.mvm_ns))  # MVMs one copy may do within the floor
        fewer[i.name] = min(copies.get(i.name, 1), max(1, -(-i.mvms // per_copy)))
    if compact:
        xbars = sum(fewer[i.name] * len(i.blocks) for i in infos)
        if digital_ns(t, digital_ops(module), -(-xbars // t.xbars_per_tile_all)) > floor * (1 + 1e-9):
            return copies, goal_ns, facts
    facts = dict(facts, status=f"{facts['status']}; copies cut to the period floor {floor:.4g} ns "
                                "(buffer traffic or digital units)")
    return fewer, floor, facts
