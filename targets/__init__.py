"""Targets: the hardware a Module is mapped onto, as data.

A `Target` is a frozen dataclass of scalars (so it prints into, and parses back from, the
mapping-IR header exactly). Presets are TOML files beside this module; a user's own TOML
file has the same keys. Every key has a unit in its name where it has a unit.

Invariants checked by `Target.validate` (called by every loader): counts and sizes are
positive, bit widths are between 1 and 32, enumerations hold one of their values.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from cimc import files
from cimc.errors import CimcError, TargetError
from . import laws

PRESET_DIR = Path(__file__).parent
SIGNED_ENCODINGS = ("differential", "offset", "bias", "unsigned")
PARTIAL_SUMS = ("quantized", "exact")
NOC_KINDS = ("mesh", "bus")
ZERO_OK = ("rows_per_read", "mvm_fill_reads", "adc_saved_bits")  # integer keys where 0 means "not used"
FLOAT_MAX = 1e15  # larger than any physical figure in its unit; products of such values stay finite
INT_MAX = 1 << 31
XBARS_MAX = 1 << 24  # crossbars on one chip


@dataclass(frozen=True)
class Target:
    name: str
    source: str  # where the numbers come from
    # -- crossbar and its converters
    xbar_rows: int
    xbar_cols: int
    cell_bits: int  # bits stored per cell
    weight_bits: int
    input_bits: int
    dac_bits: int  # bits applied per crossbar read; input_bits/dac_bits reads per MVM
    adc_bits: int
    cols_per_adc: int  # columns multiplexed onto one ADC
    # differential: a column pair per weight; offset: one reference column per block;
    # bias: weights stored with a bias removed digitally (no extra column); unsigned: as stored
    signed_weights: str
    # -- organisation
    xbars_per_tile: int
    tiles: int
    # -- timing
    xbar_read_ns: float  # array settle + sample-and-hold for one read (one DAC step)
    adc_conversion_ns: float  # one conversion of one column
    digital_ops_per_ns: float  # element operations per ns of one tile's digital units
    buffer_bytes_per_ns: float  # tile buffer bandwidth
    # -- energy
    cell_read_fj: float  # per active cell per read
    row_read_pj: float  # per active row per read: DAC, sample-and-hold, registers, shift-add
    adc_conversion_pj: float
    digital_op_pj: float
    buffer_pj_per_byte: float
    # -- area
    xbar_area_um2: float  # the array
    xbar_periph_area_um2: float  # DACs, sample-and-hold, registers, shift-add of one crossbar
    adc_area_um2: float
    tile_overhead_area_mm2: float = 0.0  # anything else in a tile (what the split below does not name)
    # -- the hierarchy: chip > tiles > crossbar groups (ISAAC's IMA, PUMA's core, PIMCOMP's
    #    matrix unit, NeuroSim's PE) > crossbars
    xbars_per_group: int = 1
    # more crossbar sizes on one chip: "ROWSxCOLS*COUNT, ..." per tile, beside the
    # `xbar_rows` x `xbar_cols` x `xbars_per_tile` pool (pool 0); each pool's crossbars are
    # indexed after the previous pools' in a tile. Per-crossbar area and leakage scale with
    # the pool's size (array with its cells, periphery with its rows, ADCs with its columns).
    pools: str = ""
    group_periph_area_mm2: float = 0.0  # input/output registers, control of one group
    group_periph_power_mw: float = 0.0
    rows_per_read: int = 0  # rows driven in one read (NeuroSim's parallel read); 0: all rows
    # what a read whose partial sum needs more than `adc_bits` does (`adc_bits_needed`):
    # "quantized": all its rows are converted together, the ADC's levels spread over the
    # range (the simulator models the loss); "exact": it reads fewer rows per conversion
    # (`read_rows`), so each conversion is exact and the cost model charges the extra reads
    partial_sums: str = "quantized"
    adc_saved_bits: int = 0  # bits an encoding saves the ADC (ISAAC's flipped weights: 1)
    mvm_fill_reads: int = 0  # pipeline fill and drain of one MVM, in read times (PUMA: 2)
    xbar_static_mw: float = 0.0  # leakage of one crossbar's converters, drawn whenever its tile is in use
    # -- tile components outside the crossbars (peak power and area; energies per event above)
    buffer_kb: float = 0.0  # tile buffer capacity (0: not modelled)
    buffer_power_mw: float = 0.0
    buffer_area_mm2: float = 0.0
    digital_power_mw: float = 0.0  # shift-add, activation, pooling, vector units
    digital_area_mm2: float = 0.0
    # -- on-chip network
    noc: str = "mesh"  # mesh (tiles share routers, `tiles_per_router`) or bus
    tiles_per_router: int = 1
    noc_bytes_per_ns: float = 0.0  # link bandwidth (0: transfers not timed)
    noc_hop_ns: float = 0.0
    noc_pj_per_byte_hop: float = 0.0
    network_power_mw: float = 0.0  # one tile's share of routers and links (peak)
    network_area_mm2: float = 0.0
    # -- power and area outside the tiles
    tile_overhead_power_mw: float = 0.0  # anything else in a tile
    tile_leakage_mw: float = 0.0  # static power of one tile in use (buffers, units), if published
    chip_io_power_mw: float = 0.0  # off-chip links (ISAAC's HyperTransport)
    chip_io_area_mm2: float = 0.0
    offchip_bytes_per_ns: float = 0.0  # off-chip memory: reloaded weights and spilled activations
    offchip_pj_per_byte: float = 0.0
    # -- the link between chips of a multi-chip mapping (one per neighbouring pair of chips in
    #    a chain; 0 bandwidth: transfers not timed)
    link_bytes_per_ns: float = 0.0
    link_pj_per_byte: float = 0.0
    link_latency_ns: float = 0.0  # per transfer, on top of its bytes / bandwidth
    global_buffer_kb: float = 0.0  # a chip-wide buffer for what the tile buffers do not hold (0: none)
    # -- the device (a device preset fills these; see targets/devices/)
    device: str = ""
    on_off_ratio: float = 0.0
    r_on_kohm: float = 0.0
    read_voltage_v: float = 0.0
    cell_write_ns: float = 0.0  # programming one row of cells (write-verify included)
    cell_write_pj: float = 0.0  # programming one cell
    endurance_cycles: float = 0.0  # writes a cell takes before it wears out (0: not modelled)
    variation_sigma: float = 0.0  # programming variation, in units of the cell's conductance range
    noise_model: str = "constant"  # the simulator's device model: constant (variation_sigma) or a published fit
    # wire resistance between neighbouring cells of a crossbar, for the simulator's IR drop (with
    # g_max = 1 / r_on_kohm): 0.35 Ohm, IBM aihwkit's default (IOParameters.ir_drop_g_ratio =
    # 1 / (0.35 Ohm x 5 uS))
    wire_ohm: float = 0.35
    description: str = ""

    # ---- derived figures -------------------------------------------------------------
    @functools.cached_property
    def slices(self) -> int:
        """Columns one weight occupies by bit slicing (before the signed encoding): the bits
        stored, B for the offset, bias and unsigned encodings, the magnitude's B - 1 in each
        array of a differential pair (the sign is which array)."""
        return magnitude_slices(self.weight_bits, self.cell_bits, self.signed_weights)

    @functools.cached_property
    def cols_per_weight(self) -> int:
        """Physical columns per logical weight column, signed encoding included."""
        return self.slices * (2 if self.signed_weights == "differential" else 1)

    @functools.cached_property
    def reads_per_mvm(self) -> int:
        return math.ceil(self.input_bits / self.dac_bits)

    @functools.cached_property
    def xbars(self) -> int:
        """Crossbars of one chip, every pool."""
        return self.xbars_per_tile_all * self.tiles

    # ---- crossbar pools --------------------------------------------------------------
    @functools.cached_property
    def pool_list(self) -> tuple[tuple[int, int, int], ...]:
        """(rows, cols, crossbars per tile) of every pool; pool 0 is the target's own size."""
        return ((self.xbar_rows, self.xbar_cols, self.xbars_per_tile), *parse_pools(self.pools))

    @functools.cached_property
    def xbars_per_tile_all(self) -> int:
        return sum(n for _, _, n in self.pool_list)

    def pool_offset(self, pool: int) -> int:
        """Index of the pool's first crossbar in a tile."""
        return sum(n for _, _, n in self.pool_list[:pool])

    def pool_of_xbar(self, xbar: int) -> int:
        for p, (_, _, n) in enumerate(self.pool_list):
            if xbar < n:
                return p
            xbar -= n
        raise IndexError(xbar)

    def pool(self, p: int) -> "Target":
        """The target as seen by the crossbars of pool `p` alone (a one-pool target)."""
        memo = self.__dict__.setdefault("_pool_memo", {})
        view = memo.get(p)
        if view is None:
            if not self.pools:
                view = self
            else:
                rows, cols, n = self.pool_list[p]
                old = {k: getattr(self, k) for k in _LAW_KEYS}
                moved = laws.rescale(old, {**old, "xbar_rows": rows, "xbar_cols": cols})  # the size laws
                view = dataclasses.replace(
                    self, pools="", xbars_per_tile=n, **{k: moved[k] for k in _LAW_KEYS})
            memo[p] = view
        return view

    @functools.cached_property
    def adcs_per_xbar(self) -> int:
        return math.ceil(self.xbar_cols / self.cols_per_adc)

    @functools.cached_property
    def cells_per_xbar(self) -> int:
        return self.xbar_rows * self.xbar_cols

    @functools.cached_property
    def groups_per_tile(self) -> int:
        """Crossbar groups of a tile, every pool (the last one may be partial)."""
        return -(-self.xbars_per_tile_all // self.xbars_per_group)

    def row_reads(self, rows: int) -> int:
        """Reads one input digit needs for a block of `rows` physical rows: one, or one per
        `read_rows` rows when the array is read in parts (partial sums added digitally)."""
        return math.ceil(rows / self.read_rows) if self.read_rows else 1

    def adc_bits_needed(self, rows: int) -> int:
        """Bits that convert the partial sum of `rows` rows exactly: every row at its largest
        cell level (2^cell_bits - 1) times its largest input digit (2^dac_bits - 1), less what
        the encoding saves (ISAAC, ISCA 2016, sec. 5: ceil(log2(R (2^c - 1) + 1)) for 1-bit
        inputs, one bit fewer with its flipped weights)."""
        top = rows * (2 ** self.cell_bits - 1) * (2 ** self.dac_bits - 1)
        return max(1, math.ceil(math.log2(top + 1)) - self.adc_saved_bits)

    @functools.cached_property
    def exact_rows(self) -> int:
        """The most rows one conversion of `adc_bits` covers exactly (0: not even one)."""
        levels = 2 ** (self.adc_bits + self.adc_saved_bits) - 1
        return levels // ((2 ** self.cell_bits - 1) * (2 ** self.dac_bits - 1))

    @functools.cached_property
    def read_rows(self) -> int:
        """Rows read together, each group converted on its own; 0: all the block's rows.
        `rows_per_read` where given; with exact partial sums, no more than `exact_rows`."""
        if self.partial_sums != "exact":
            return self.rows_per_read
        most = max(rows for rows, _, _ in self.pool_list)
        limit = min(self.rows_per_read or most, self.exact_rows)
        return 0 if limit >= most and not self.rows_per_read else limit

    def converter(self) -> dict:
        """What one read asks of the ADC, for reports: the bits a full read needs, the rows a
        conversion covers, the reads per input digit, and whether sums are exact or quantized."""
        rows = self.read_rows or self.xbar_rows
        needed = self.adc_bits_needed(rows)
        return {"adc_bits": self.adc_bits, "bits_needed": needed, "rows_per_conversion": rows,
                "reads_per_digit": self.row_reads(self.xbar_rows), "partial_sums": self.partial_sums,
                "quantized": needed > self.adc_bits}

    def _pool_views(self) -> list["Target"]:
        return [self.pool(p) for p in range(len(self.pool_list))] if self.pools else [self]

    def tile_area_breakdown(self) -> dict:
        """Area (mm2) of one tile by component."""
        views = self._pool_views()
        return {"array": sum(v.xbars_per_tile * v.xbar_area_um2 for v in views) * 1e-6,
                "dac_and_periphery": sum(v.xbars_per_tile * v.xbar_periph_area_um2 for v in views) * 1e-6,
                "adc": sum(v.xbars_per_tile * v.adcs_per_xbar for v in views) * self.adc_area_um2 * 1e-6,
                "group_periphery": self.groups_per_tile * self.group_periph_area_mm2,
                "buffer": self.buffer_area_mm2, "network": self.network_area_mm2, "digital": self.digital_area_mm2,
                "other": self.tile_overhead_area_mm2}

    @functools.cached_property
    def tile_area_mm2(self) -> float:
        return sum(self.tile_area_breakdown().values())

    @functools.cached_property
    def chip_area_mm2(self) -> float:
        return self.tiles * self.tile_area_mm2

    @functools.cached_property
    def footprint_memo(self) -> dict:
        """Memo of `cimc.mapping.footprint` results for this target."""
        return {}

    @property
    def offset_cols(self) -> int:
        """Columns a block adds for its weights' sign: the reference column of the "offset"
        encoding (one per block), none otherwise."""
        return 1 if self.signed_weights == "offset" else 0

    # ---- peak figures, derived from the component numbers ------------------------------
    @functools.cached_property
    def weights_per_xbar(self) -> int:
        """Weights one crossbar holds: its rows times the weight columns that fit its width."""
        return self.xbar_rows * ((self.xbar_cols - self.offset_cols) // self.cols_per_weight)

    @functools.cached_property
    def xbar_mvm_ns(self) -> float:
        """One MVM of a full crossbar: every row driven, every column converted."""
        return (self.reads_per_mvm * self.row_reads(self.xbar_rows) + self.mvm_fill_reads) * self.read_ns(self.xbar_cols)

    @functools.cached_property
    def xbar_mvm_parts_pj(self) -> dict:
        """Energy of one MVM of a full crossbar by component: every row driven once per
        input digit, every column converted once per read."""
        r, c, n = self.xbar_rows, self.xbar_cols, self.reads_per_mvm
        return {"adc": n * self.row_reads(r) * c * self.adc_conversion_pj, "dac_and_periphery": n * r * self.row_read_pj,
                "array": n * r * c * self.cell_read_fj * 1e-3}

    @functools.cached_property
    def xbar_mvm_pj(self) -> float:
        return sum(self.xbar_mvm_parts_pj.values())

    def peak(self) -> dict:
        """Peak throughput, power and area of the whole chip, all crossbars busy.

        Operations count 2 per multiply-accumulate of a full-precision weight and input."""
        gops = sum(2 * v.weights_per_xbar * v.xbars_per_tile * self.tiles / v.xbar_mvm_ns  # ops per ns = GOPS
                   for v in self._pool_views())
        tile_mw = sum(self.tile_power_breakdown().values())
        power_w = (self.tiles * tile_mw + self.chip_io_power_mw) * 1e-3
        area = self.chip_area_mm2 + self.chip_io_area_mm2
        return {"peak_gops": gops, "power_w": power_w, "area_mm2": area, "peak_gops_per_w": gops / power_w,
                "peak_gops_per_s_mm2": gops / area, "tile_power_mw": tile_mw, "tile_area_mm2": self.tile_area_mm2,
                "group_power_mw": self.group_power_mw, "group_area_mm2": self.group_area_mm2,
                "weight_capacity": sum(v.weights_per_xbar * v.xbars_per_tile for v in self._pool_views()) * self.tiles}

    def tile_power_breakdown(self) -> dict:
        """Power (mW) of one tile with every crossbar busy, by component."""
        adc = dac = array = 0.0
        for v in self._pool_views():  # pJ per MVM over ns per MVM = mW, per crossbar
            n, t, parts = v.xbars_per_tile, v.xbar_mvm_ns, v.xbar_mvm_parts_pj
            adc += n * (parts["adc"] / t + v.xbar_static_mw)
            dac += n * parts["dac_and_periphery"] / t
            array += n * parts["array"] / t
        return {"adc": adc, "dac_and_periphery": dac, "array": array,
                "group_periphery": self.groups_per_tile * self.group_periph_power_mw,
                "buffer": self.buffer_power_mw, "network": self.network_power_mw, "digital": self.digital_power_mw,
                "other": self.tile_overhead_power_mw}

    @functools.cached_property
    def group_power_mw(self) -> float:
        """One crossbar group (IMA / core / matrix unit) with its crossbars busy."""
        p = self.tile_power_breakdown()
        xbars = p["adc"] + p["dac_and_periphery"] + p["array"]
        return xbars / self.groups_per_tile + self.group_periph_power_mw  # the tile's crossbars, every pool

    @functools.cached_property
    def group_area_mm2(self) -> float:
        a = self.tile_area_breakdown()
        return (a["adc"] + a["dac_and_periphery"] + a["array"]) / self.groups_per_tile + self.group_periph_area_mm2

    def read_ns(self, active_cols: int) -> float:
        """Time of one crossbar read with `active_cols` columns converted.

        The array read and the conversions of the previous read overlap (sample-and-hold),
        so a read takes the longer of the two; each ADC converts its columns one by one.
        """
        conversions_per_adc = min(active_cols, self.cols_per_adc)
        return max(self.xbar_read_ns, conversions_per_adc * self.adc_conversion_ns)

    # ---- construction ----------------------------------------------------------------
    def validate(self, where: str = "target") -> "Target":
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and f.name in ZERO_OK and value < 0:
                raise TargetError(f"{where}: '{f.name}' must be an integer >= 0, got {value}.")
            if f.type == "int" and f.name not in ZERO_OK and value <= 0:
                raise TargetError(f"{where}: '{f.name}' must be a positive integer, got {value}.")
            if f.type == "float" and (not math.isfinite(value) or value < 0):
                raise TargetError(f"{where}: '{f.name}' must be a finite number >= 0, got {value}.")
            if f.type == "float" and value > FLOAT_MAX:
                raise TargetError(f"{where}: '{f.name}' = {value:g} is absurd (over {FLOAT_MAX:g}); energies and "
                                  "times derived from it would overflow.")
            if f.type == "int" and value > INT_MAX:
                raise TargetError(f"{where}: '{f.name}' = {value} is absurd (over {INT_MAX:,}).")
        for key in ("cell_bits", "weight_bits", "input_bits", "dac_bits", "adc_bits"):
            if getattr(self, key) > 32:
                raise TargetError(f"{where}: '{key}' = {getattr(self, key)} is over 32 bits.")
        if self.tiles * self.xbars_per_tile > XBARS_MAX:
            raise TargetError(f"{where}: {self.tiles} tiles of {self.xbars_per_tile} crossbars is absurd (over "
                              f"{XBARS_MAX:,} crossbars); no solver model of such a chip fits in memory.")
        for key in ("xbar_rows", "xbar_cols"):
            if getattr(self, key) > 1 << 16:
                raise TargetError(f"{where}: '{key}' = {getattr(self, key)} is absurd (over 65536).")
        if self.partial_sums not in PARTIAL_SUMS:
            raise TargetError(f"{where}: 'partial_sums' must be one of {', '.join(PARTIAL_SUMS)}, "
                              f"got '{self.partial_sums}'.")
        if self.partial_sums == "exact" and self.exact_rows < 1:
            raise TargetError(
                f"{where}: with exact partial sums, a {self.adc_bits}-bit ADC cannot convert even one row of "
                f"{self.cell_bits}-bit cells driven by {self.dac_bits}-bit DACs (that needs "
                f"{self.adc_bits_needed(1)} bits); raise adc_bits, lower cell_bits or dac_bits, or set "
                "partial_sums = \"quantized\".")
        if self.signed_weights not in SIGNED_ENCODINGS:
            raise TargetError(
                f"{where}: 'signed_weights' must be one of {', '.join(SIGNED_ENCODINGS)}, "
                f"got '{self.signed_weights}'."
            )
        try:
            pools = parse_pools(self.pools)
        except ValueError as e:
            raise TargetError(f"{where}: 'pools' = {self.pools!r}: {e}") from None
        for rows, cols, _ in pools:
            if self.cols_per_weight + self.offset_cols > cols:
                raise TargetError(f"{where}: pool {rows}x{cols} cannot hold one weight "
                                  f"({self.cols_per_weight} columns).")
        if self.noise_model not in NOISE_MODELS:
            raise TargetError(f"{where}: 'noise_model' must be one of {', '.join(NOISE_MODELS)}, "
                              f"got '{self.noise_model}'.")
        if self.noc not in NOC_KINDS:
            raise TargetError(f"{where}: 'noc' must be one of {', '.join(NOC_KINDS)}, got '{self.noc}'.")
        if self.cols_per_weight + self.offset_cols > self.xbar_cols:
            raise TargetError(
                f"{where}: one weight needs {self.cols_per_weight} columns "
                f"({self.weight_bits}-bit weights in {self.cell_bits}-bit cells, "
                f"{self.signed_weights} encoding) but a crossbar has {self.xbar_cols}; "
                "raise xbar_cols or cell_bits."
            )
        return self

    def replace(self, **overrides) -> "Target":
        """The target with keys changed; figures whose knobs changed move by their laws
        (`cimc.targets.laws`) unless they are among the keys given."""
        where = f"target '{self.name}' with overrides"
        old = self.to_dict()
        return from_dict(laws.rescale(old, _with_device(old, overrides, where), set(overrides)), where=where)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(Target)}
_LAW_KEYS = tuple(dict.fromkeys([*laws.KNOBS, *(law.figure for law in laws.LAWS)]))
_TYPES = {"int": int, "float": float, "str": str}


def parse_pools(text: str) -> list[tuple[int, int, int]]:
    """'256x256*16, 64x64*64' -> [(256, 256, 16), (64, 64, 64)]; ValueError says what is wrong."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        size, star, count = part.partition("*")
        rows, x, cols = size.lower().partition("x")
        try:
            if not (star and x):
                raise ValueError
            r, c, n = int(rows), int(cols), int(count)
        except ValueError:
            raise ValueError(f"'{part}' is not ROWSxCOLS*COUNT (e.g. '256x256*16')") from None
        if not (0 < r <= 1 << 16 and 0 < c <= 1 << 16 and n > 0):
            raise ValueError(f"'{part}': rows, columns and count must be positive (sizes at most 65536)")
        out.append((r, c, n))
    return out


def _coerce(key: str, value, where: str):
    kind = _FIELDS[key].type
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, _TYPES[kind]):
        raise TargetError(
            f"{where}: '{key}' must be {'an' if kind == 'int' else 'a'} {kind}, "
            f"got {type(value).__name__} {value!r}."
        )
    return value


def from_dict(data: dict, where: str = "target") -> Target:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise TargetError(
            f"{where}: unknown key(s) {', '.join(unknown)}. "
            f"Known keys: {', '.join(sorted(_FIELDS))}."
        )
    missing = [f.name for f in fields(Target) if f.name not in data and f.default is dataclasses.MISSING]
    if missing:
        raise TargetError(f"{where}: missing key(s) {', '.join(missing)}.")
    values = {k: _coerce(k, v, where) for k, v in data.items()}
    return Target(**values).validate(where)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


DEVICE_DIR = PRESET_DIR / "devices"
DEVICE_KEYS = ("cell_bits", "on_off_ratio", "r_on_kohm", "read_voltage_v", "cell_write_ns", "cell_write_pj",
               "variation_sigma", "noise_model", "endurance_cycles")
def magnitude_slices(weight_bits: int, cell_bits: int, signed_weights: str) -> int:
    """Cells one stored weight takes (see Target.slices)."""
    bits = weight_bits - 1 if signed_weights == "differential" and weight_bits > 1 else weight_bits
    return math.ceil(bits / cell_bits)


# the simulator's device models (cimc.sim.physics.MODELS; a test keeps the two the same)
NOISE_MODELS = ("constant", "pcm-nandakumar2019", "rram-wan2022")


def device_names() -> list[str]:
    return sorted(p.stem for p in DEVICE_DIR.glob("*.toml"))


def load_device(name: str, where: str = "target") -> dict:
    """A device preset: its name, description, source and the target keys it sets."""
    if not isinstance(name, str) or name not in device_names():
        raise TargetError(f"{where}: unknown device {name!r}. Device presets: {', '.join(device_names())} "
                          "(cimc targets devices).")
    data = _load_toml(DEVICE_DIR / f"{name}.toml")
    unknown = sorted(set(data) - set(DEVICE_KEYS) - {"name", "description", "source"})
    if unknown:  # a preset file of ours is wrong: say which
        raise TargetError(f"device preset '{name}': unknown key(s) {', '.join(unknown)}.")
    return data


def _with_device(data: dict, overrides: dict, where: str) -> dict:
    """Layer the values: the device's keys under the target file's, a device named in the
    overrides over the file's values, and the other overrides over everything."""
    data = dict(data)
    if overrides.get("device"):
        dev = load_device(overrides["device"], where)
        data.update({k: dev[k] for k in DEVICE_KEYS if k in dev})
    elif data.get("device") and "device" not in overrides:
        dev = load_device(data["device"], where)
        data = {**{k: dev[k] for k in DEVICE_KEYS if k in dev}, **data}
    data.update(overrides)
    return data


@functools.lru_cache(maxsize=64)
def _parse(path: str, mtime_ns: int, size: int) -> dict:
    """A TOML file's contents, parsed once per version of the file (search loops load the
    same target thousands of times)."""
    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


def _load_toml(path: Path) -> dict:
    st = path.stat()
    return copy.deepcopy(_parse(str(path), st.st_mtime_ns, st.st_size))


def _read_toml(path: Path) -> dict:
    try:
        data = _load_toml(path)
    except (OSError, UnicodeDecodeError) as e:
        raise TargetError(f"{path}: cannot read target file ({e}).") from None
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{path}: not valid TOML ({e}). Fix the file or pick a preset: cimc targets.") from None
    # A user file may start from a preset: base = "rram-256", then override keys.
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base not in preset_names():
            raise TargetError(f"{path}: 'base' must name a preset ({', '.join(preset_names())}), got {base!r}.")
        under = _read_toml(PRESET_DIR / f"{base}.toml")
        data = laws.rescale(under, {**under, **data}, set(data))  # the file's knobs move the base's figures
    return data


def parse_override(text: str) -> tuple[str, object]:
    """Parse a command-line `key=value`; the value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise TargetError(f"--set '{text}': write it as key=value, e.g. --set adc_bits=6.")
    if key not in _FIELDS:
        raise TargetError(f"--set '{text}': unknown target key '{key}'. Known keys: {', '.join(sorted(_FIELDS))}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def load_target(spec: "str | Path | Target", overrides: dict | None = None) -> Target:
    """A preset name, a TOML file path, or a Target; `overrides` replace keys."""
    overrides = dict(overrides or {})
    if isinstance(spec, Target):
        return spec.replace(**overrides) if overrides else spec
    spec_str = str(spec)
    if spec_str in preset_names():
        path = PRESET_DIR / f"{spec_str}.toml"
    else:
        path = Path(spec_str)
        if not (path.suffix == ".toml" or path.exists() or path.is_symlink()):
            raise TargetError(
                f"unknown target '{spec_str}': not a preset ({', '.join(preset_names())}) "
                "and not a .toml file. List presets with: cimc targets."
            )
        try:  # a regular file within the size limit (a FIFO would block, /dev/zero would fill memory)
            files.check_input(path, "target file", files.TOML_MAX_BYTES,
                              missing=f"target file '{spec_str}' does not exist.")
        except CimcError as e:
            raise TargetError(str(e)) from None
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, repr(sorted(overrides.items())))
    cached = _TARGETS.get(key)
    if cached is not None:
        return cached
    data = _read_toml(path)
    where = f"target '{spec_str}'"
    if overrides:
        unknown = sorted(set(overrides) - set(_FIELDS))
        if unknown:
            raise TargetError(f"{where}: unknown override key(s) {', '.join(unknown)}. Known keys: {', '.join(sorted(_FIELDS))}.")
        where += " with overrides " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    target = from_dict(laws.rescale(data, _with_device(data, overrides, where), set(overrides)), where)
    if len(_TARGETS) >= 128:  # a sweep over many overrides: forget the oldest
        del _TARGETS[next(iter(_TARGETS))]
    _TARGETS[key] = target
    return target


# Targets loaded, by file version and overrides: a search loop compiles for the same target
# thousands of times, and a Target (frozen) keeps its memo of block footprints.
_TARGETS: dict[tuple, Target] = {}


__all__ = ["Target", "magnitude_slices", "load_target", "from_dict", "preset_names", "device_names", "load_device", "parse_override",
           "parse_pools", "PRESET_DIR"]
