"""Targets: the hardware a Module is mapped onto, as data.

A `Target` is a frozen dataclass of scalars (so it prints into, and parses back from, the
mapping-IR header exactly). Presets are TOML files beside this module; a user's own TOML
file has the same keys. Every key has a unit in its name where it has a unit.

Invariants checked by `Target.validate` (called by every loader): counts and sizes are
positive, bit widths are between 1 and 32, enumerations hold one of their values.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from cimc.errors import TargetError

PRESET_DIR = Path(__file__).parent
SIGNED_ENCODINGS = ("differential", "offset", "bias", "unsigned")


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
    tile_overhead_area_mm2: float  # buffer, bus, router share, digital units
    # -- power and area outside the crossbars (for the chip's peak figures)
    tile_overhead_power_mw: float = 0.0  # buffer, bus, router share, digital units of one tile
    chip_io_power_mw: float = 0.0  # off-chip links (ISAAC's HyperTransport)
    chip_io_area_mm2: float = 0.0
    description: str = ""

    # ---- derived figures -------------------------------------------------------------
    @functools.cached_property
    def slices(self) -> int:
        """Columns one weight occupies by bit slicing (before the signed encoding)."""
        return math.ceil(self.weight_bits / self.cell_bits)

    @functools.cached_property
    def cols_per_weight(self) -> int:
        """Physical columns per logical weight column, signed encoding included."""
        return self.slices * (2 if self.signed_weights == "differential" else 1)

    @functools.cached_property
    def reads_per_mvm(self) -> int:
        return math.ceil(self.input_bits / self.dac_bits)

    @functools.cached_property
    def xbars(self) -> int:
        return self.xbars_per_tile * self.tiles

    @functools.cached_property
    def adcs_per_xbar(self) -> int:
        return math.ceil(self.xbar_cols / self.cols_per_adc)

    @functools.cached_property
    def cells_per_xbar(self) -> int:
        return self.xbar_rows * self.xbar_cols

    @functools.cached_property
    def tile_area_mm2(self) -> float:
        per_xbar_um2 = self.xbar_area_um2 + self.xbar_periph_area_um2 + self.adcs_per_xbar * self.adc_area_um2
        return self.xbars_per_tile * per_xbar_um2 * 1e-6 + self.tile_overhead_area_mm2

    @functools.cached_property
    def chip_area_mm2(self) -> float:
        return self.tiles * self.tile_area_mm2

    @functools.cached_property
    def footprint_memo(self) -> dict:
        """Memo of `cimc.mapping.footprint` results for this target."""
        return {}

    # ---- peak figures, derived from the component numbers ------------------------------
    @functools.cached_property
    def weights_per_xbar(self) -> int:
        """Weights one crossbar holds: its rows times the weight columns that fit its width."""
        offset = 1 if self.signed_weights == "offset" else 0
        return self.xbar_rows * ((self.xbar_cols - offset) // self.cols_per_weight)

    @functools.cached_property
    def xbar_mvm_ns(self) -> float:
        """One MVM of a full crossbar: every row driven, every column converted."""
        return self.reads_per_mvm * self.read_ns(self.xbar_cols)

    @functools.cached_property
    def xbar_mvm_pj(self) -> float:
        r, c = self.xbar_rows, self.xbar_cols
        return self.reads_per_mvm * (r * self.row_read_pj + r * c * self.cell_read_fj * 1e-3
                                     + c * self.adc_conversion_pj)

    def peak(self) -> dict:
        """Peak throughput, power and area of the whole chip, all crossbars busy.

        Operations count 2 per multiply-accumulate of a full-precision weight and input."""
        gops = 2 * self.weights_per_xbar * self.xbars / self.xbar_mvm_ns  # ops per ns = GOPS
        xbar_mw = self.xbar_mvm_pj / self.xbar_mvm_ns  # pJ per ns = mW
        tile_mw = self.xbars_per_tile * xbar_mw + self.tile_overhead_power_mw
        power_w = (self.tiles * tile_mw + self.chip_io_power_mw) * 1e-3
        area = self.chip_area_mm2 + self.chip_io_area_mm2
        return {"peak_gops": gops, "power_w": power_w, "area_mm2": area, "peak_gops_per_w": gops / power_w,
                "peak_gops_per_s_mm2": gops / area, "tile_power_mw": tile_mw, "tile_area_mm2": self.tile_area_mm2,
                "weight_capacity": self.weights_per_xbar * self.xbars}

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
            if f.type == "int" and value <= 0:
                raise TargetError(f"{where}: '{f.name}' must be a positive integer, got {value}.")
            if f.type == "float" and (not math.isfinite(value) or value < 0):
                raise TargetError(f"{where}: '{f.name}' must be a finite number >= 0, got {value}.")
        for key in ("cell_bits", "weight_bits", "input_bits", "dac_bits", "adc_bits"):
            if getattr(self, key) > 32:
                raise TargetError(f"{where}: '{key}' = {getattr(self, key)} is over 32 bits.")
        for key in ("xbar_rows", "xbar_cols"):
            if getattr(self, key) > 1 << 16:
                raise TargetError(f"{where}: '{key}' = {getattr(self, key)} is absurd (over 65536).")
        if self.signed_weights not in SIGNED_ENCODINGS:
            raise TargetError(
                f"{where}: 'signed_weights' must be one of {', '.join(SIGNED_ENCODINGS)}, "
                f"got '{self.signed_weights}'."
            )
        if self.cols_per_weight + (1 if self.signed_weights == "offset" else 0) > self.xbar_cols:
            raise TargetError(
                f"{where}: one weight needs {self.cols_per_weight} columns "
                f"({self.weight_bits}-bit weights in {self.cell_bits}-bit cells, "
                f"{self.signed_weights} encoding) but a crossbar has {self.xbar_cols}; "
                "raise xbar_cols or cell_bits."
            )
        return self

    def replace(self, **overrides) -> "Target":
        return from_dict({**self.to_dict(), **overrides}, where=f"target '{self.name}' with overrides")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(Target)}
_TYPES = {"int": int, "float": float, "str": str}


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


def _read_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TargetError(f"{path}: cannot read target file ({e}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{path}: not valid TOML ({e}). Fix the file or pick a preset: cimc targets.") from None
    # A user file may start from a preset: base = "rram-256", then override keys.
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base not in preset_names():
            raise TargetError(f"{path}: 'base' must name a preset ({', '.join(preset_names())}), got {base!r}.")
        data = {**_read_toml(PRESET_DIR / f"{base}.toml"), **data}
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
        if not (path.suffix == ".toml" or path.exists()):
            raise TargetError(
                f"unknown target '{spec_str}': not a preset ({', '.join(preset_names())}) "
                "and not a .toml file. List presets with: cimc targets."
            )
        if not path.is_file():
            raise TargetError(f"target file '{spec_str}' does not exist.")
    data = _read_toml(path)
    where = f"target '{spec_str}'"
    if overrides:
        unknown = sorted(set(overrides) - set(_FIELDS))
        if unknown:
            raise TargetError(f"{where}: unknown override key(s) {', '.join(unknown)}. Known keys: {', '.join(sorted(_FIELDS))}.")
        data.update(overrides)
        where += " with overrides " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return from_dict(data, where)


__all__ = ["Target", "load_target", "from_dict", "preset_names", "parse_override", "PRESET_DIR"]
