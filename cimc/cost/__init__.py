"""The cost model: latency, throughput, energy, area and utilization of a mapped Module.

Units: ns, nJ (pJ inside), mm2. What the numbers mean:
- A block's MVM takes `reads_per_mvm` crossbar reads; a read takes the longer of the array
  read and the conversions of its active columns by the ADCs they share
  (`Target.read_ns`). Blocks in one crossbar never read at the same time.
- A layer's copies split its MVMs: evenly, or as each copy's `share` says. The load
  of a block is its copy's MVMs times its MVM time; the load of a crossbar is the sum of
  its blocks' loads. A layer running alone takes the largest load it puts on one crossbar:
  copies (or blocks) that share a crossbar do not speed it up.
- A digital op runs on the digital units of the tiles that hold the data it reads
  (`digital_tiles`: the tiles of the weight layer it reads, all copies; a digital op after
  another on the same tiles; with nothing placed, every tile in use), split evenly: it takes
  `ops / (digital_ops_per_ns x tiles)`, and puts that on each of its tiles. Every op moves its
  input and output elements through the tile buffer at `buffer_bytes_per_ns` (overlapped
  with compute: the longer of the two counts).
- Latency: the schedule's makespan when the mapping has one (`sched.slot`), else the
  longest path through the graph with every op taking its time; never less than the period
  (one inference does the busiest resource's whole work).
- Throughput: inferences pipelined; the period is the busiest resource's work per
  inference: a crossbar's load, one tile's digital units (the digital ops it runs), one
  op's buffer traffic, or the network (all byte-hops of an inference over all its links, as if routing
  spread them evenly). An op's own network time (its bytes over one link, plus the hops)
  adds to its latency, not to the period: transfers of successive inferences overlap.
- Energy per block MVM, per read: active rows x `row_read_pj` + active cells x
  `cell_read_fj` + conversions x `adc_conversion_pj`; partial sums of row blocks are added
  digitally; every op's buffer traffic costs `buffer_pj_per_byte`. Rows and cells count at
  full drive (every row, every read) unless the layer (or the module) has an
  `input_density`: the share of that drive its inputs use, as `cimc eval` measures it.
- Area: the tiles the placement touches (`area_mm2`) and the whole chip (`chip_area_mm2`).
Bounds (valid for the module's partition, whatever the duplication and packing):
- crossbars: ceil(weight cells of one copy / cells per crossbar);
- period: total block-read time per inference over the crossbar budget; the shared-work
  bound (`shared_work_bound`): a block that leaves no room beside it holds a crossbar
  alone, one per copy the period needs (ceil(load / P)), and the time those crossbars have
  beyond its load is lost; the other blocks' copies need the cells of the crossbars left;
  halves of such blocks (pack may halve light ones) lose the time of the crossbars they
  hold where little else fits beside them; no block's single MVM can be split; digital
  work over all tiles' digital units; any op's buffer traffic; and, after `duplicate`, the
  proven bound of its relaxation (cells, loads) with every cell of the budget allowed;
- latency: the longest path with every weight layer at one MVM time (unlimited copies)
  and every digital op at one output row's time (ops stream row by row) split over every
  tile of the chips used.
The ISAAC-like baseline of the same partition (every block on its own crossbar, one copy)
is costed alongside, for `speedup_vs_baseline`.
"""

from __future__ import annotations

from cimc.cost.bounds import longest_paths, shared_work_bound
from cimc.cost.evaluate import evaluate, reprogramming_cost
from cimc.cost.loads import (
                             COMPONENTS,
                             Loads,
                             buffer_bytes,
                             digital_tiles,
                             mapping_loads,
                             period_floor_ns,
                             spread_tiles,
                             tiles_in_use,
)
from cimc.cost.network import (
                             home_tiles,
                             network_links,
                             network_period_ns,
                             network_traffic,
                             placed_network_period_ns,
                             router_hops,
)
from cimc.cost.timing import (
                             best_mvm_ns,
                             block_load_ns,
                             block_mvm_ns,
                             block_mvm_parts,
                             block_read_ns,
                             block_share,
                             copy_share,
                             footprint_read_ns,
                             layout_family,
                             one_lane,
                             partition_mvm_ns,
)

__all__ = [
    "evaluate", "reprogramming_cost", "longest_paths", "shared_work_bound", "COMPONENTS", "Loads", "buffer_bytes",
    "digital_tiles", "mapping_loads", "period_floor_ns", "spread_tiles", "tiles_in_use", "home_tiles", "network_links",
    "network_period_ns", "network_traffic", "placed_network_period_ns", "router_hops", "best_mvm_ns", "block_load_ns",
    "block_mvm_ns", "block_mvm_parts", "block_read_ns", "block_share", "copy_share", "footprint_read_ns",
    "layout_family", "one_lane", "partition_mvm_ns",
]
