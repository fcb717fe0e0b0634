"""Accuracy evaluators: how a candidate network gets its weights and its accuracy.

- `Train`: short training from scratch (epochs, batch, learning rate, seed); cached on disk by
  the network's config, the data and the training settings.
- `Supernet`: one weight-sharing supernet per family, trained once (sandwich rule) and cached on
  disk; a candidate inherits its weights, BatchNorm statistics re-estimated, optionally
  fine-tuned for a few steps.
- `Callback(fn)`: `fn(model, config) -> {metric: value}`, the user's own (it may train `model`).
- `Untrained`: random weights, no accuracy (cost-only searches).

Accuracy is measured on the validation split, never the test split (`SearchData`): the final
Pareto points are measured on the test split. Accuracy on the chip (quantised, under device
variation) is measured by the search engine on the candidate's own compiled mapping.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from cimc import files
from cimc.data import Dataset, load_dataset
from cimc.search.families import Family, Shape
from cimc.search.knobs import SpaceError
from cimc.targets import load_target


def cache_dir() -> Path:
    """Where trained models and supernets are kept: $CIMC_CACHE, else ~/.cache/cimc."""
    return Path(os.environ.get("CIMC_CACHE") or Path.home() / ".cache" / "cimc")


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SearchData:
    """A dataset split three ways: train (training), val (the search's accuracy), test (reports)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shape: Shape

    @staticmethod
    def load(name: str, val_fraction: float = 0.1, train_samples: int | None = None,
             val_samples: int | None = None) -> "SearchData":
        """`name`: 'digits', 'fashion-mnist' or an .npz (see cimc.data). The validation split is
        a fixed random `val_fraction` of the training split; `train_samples` and `val_samples`
        cap their sizes (for quick runs)."""
        if not 0 < val_fraction < 1:
            raise SpaceError(f"data: val_fraction = {val_fraction}; give a fraction between 0 and 1.")
        ds: Dataset = load_dataset(name)
        if len(ds.x_train) < 2:
            raise SpaceError(f"data '{name}': the search needs a training split (x_train, y_train) to train and "
                             "validate on; it has none.")
        x, y = ds.x_train, ds.y_train
        order = np.random.default_rng(0).permutation(len(x))
        cut = max(1, int(round(len(x) * val_fraction)))
        val, train = order[:cut], order[cut:]
        if train_samples:
            train = train[:train_samples]
        if val_samples:
            val = val[:val_samples]
        if x.ndim != 4 or x.shape[2] != x.shape[3]:
            raise SpaceError(f"data '{name}': the families take square images [N, C, H, H]; it has {list(x.shape)}.")
        shape = Shape(int(x.shape[1]), int(x.shape[2]), ds.classes)
        return SearchData(ds.name, x[train], y[train], x[val], y[val], ds.x_test, ds.y_test, shape)

    def validation(self) -> Dataset:
        """The validation split as a `cimc.data.Dataset` (its 'test' part), for the simulator."""
        return Dataset(f"{self.name}/val", self.x_train, self.y_train, self.x_val, self.y_val)

    def test(self) -> Dataset:
        return Dataset(f"{self.name}/test", self.x_train, self.y_train, self.x_test, self.y_test)

    def signature(self) -> dict:
        return {"data": self.name, "train": len(self.x_train), "val": len(self.x_val), "shape": asdict(self.shape)}


def float_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    from cimc.train import accuracy

    return accuracy(model, x, y, batch)


class Evaluator:
    """Gives a candidate network its weights and its float accuracy on the validation split."""

    kind = "base"

    def signature(self) -> dict:
        """What the result depends on, besides the network config and the data (for caches)."""
        return {"kind": self.kind}

    def model(self, family: Family, config: dict, data: SearchData, knobs: dict | None = None
              ) -> tuple[torch.nn.Module, dict]:
        """The trained candidate and its metrics; `knobs` are the space's network knobs."""
        raise NotImplementedError

    def metrics(self) -> tuple[str, ...]:
        """The metric names this evaluator gives."""
        return ("accuracy",)


@dataclass
class Untrained(Evaluator):
    """Random weights (seeded), no accuracy: for searches over cost alone."""

    seed: int = 0
    kind = "none"

    def signature(self) -> dict:
        return {"kind": self.kind, "seed": self.seed}

    def model(self, family, config, data, knobs=None):
        torch.manual_seed(self.seed)
        model, _ = family.build(config, data.shape)
        return model.eval(), {}

    def metrics(self):
        return ()


@dataclass
class Train(Evaluator):
    """Short training from scratch with Adam and a one-cycle schedule (`cimc.train.fit`).
    variation_sigma > 0 trains with the device's cell noise (variation-aware)."""

    epochs: int = 2
    batch: int = 128
    lr: float = 3e-3
    seed: int = 0
    variation_sigma: float = 0.0
    target: str = "rram-256"  # whose weight bits, cell bits and encoding the training noise follows
    cache: bool = True
    kind = "train"

    def __post_init__(self):
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0 or self.variation_sigma < 0:
            raise SpaceError(f"evaluator train: epochs {self.epochs}, batch {self.batch}, lr {self.lr}, "
                             f"variation_sigma {self.variation_sigma}; epochs and batch >= 1, lr > 0, sigma >= 0.")

    def signature(self):
        return {"kind": self.kind, "epochs": self.epochs, "batch": self.batch, "lr": self.lr, "seed": self.seed,
                "variation_sigma": self.variation_sigma,
                "target": self.target if self.variation_sigma else ""}

    def model(self, family, config, data, knobs=None):
        from cimc.sim import Variation
        from cimc.train import fit

        torch.manual_seed(self.seed)
        model, used = family.build(config, data.shape)
        key = digest({"family": family.name, "args": family.args, "config": used, "eval": self.signature(),
                      "data": data.signature()})
        path = cache_dir() / "models" / f"{key}.pt"
        if self.cache and path.is_file():
            try:
                saved = torch.load(path, weights_only=True)
                model.load_state_dict(saved["state"])
                return model.eval(), dict(saved["metrics"])
            except Exception:  # a damaged cache entry: train again and replace it
                pass
        var = Variation(sigma=self.variation_sigma) if self.variation_sigma else None
        fit(model, data.x_train, data.y_train, epochs=self.epochs, batch=self.batch, lr=self.lr, variation=var,
            target=self.target, seed=self.seed)
        metrics = {"accuracy": float_accuracy(model, data.x_val, data.y_val)}
        if self.cache:
            _save(path, {"state": model.state_dict(), "metrics": metrics})
        return model, metrics


def _save(path: Path, obj) -> None:
    """torch.save through cimc's atomic writer (a killed worker leaves no half file)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, buf.getvalue(), "cache file")


@dataclass
class Supernet(Evaluator):
    """A weight-sharing supernet of the space's family, trained once and cached on disk; a
    candidate is its sub-network (`cimc.search.supernet`). variation_sigma > 0 trains it with
    the device's cell noise. finetune_steps > 0 fine-tunes each candidate briefly."""

    epochs: int = 10
    batch: int = 128
    lr: float = 3e-3
    sandwich: int = 2  # random members per step besides the largest and the smallest
    seed: int = 0
    variation_sigma: float = 0.0
    target: str = "rram-256"
    calib_samples: int = 1024  # training images that re-estimate a member's BatchNorm statistics
    finetune_steps: int = 0
    log: Callable | None = field(default=None, repr=False, compare=False)
    kind = "supernet"

    def __post_init__(self):
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0 or self.sandwich < 0 or self.calib_samples < 0 \
                or self.finetune_steps < 0 or self.variation_sigma < 0:
            raise SpaceError("evaluator supernet: epochs and batch >= 1, lr > 0, sandwich, calib_samples, "
                             "finetune_steps and variation_sigma >= 0.")
        self._nets: dict = {}
        self.train_seconds = 0.0  # time spent training (0 when loaded from the cache)

    def signature(self):
        return {"kind": self.kind, "epochs": self.epochs, "batch": self.batch, "lr": self.lr,
                "sandwich": self.sandwich, "seed": self.seed, "variation_sigma": self.variation_sigma,
                "target": self.target if self.variation_sigma else "", "calib": self.calib_samples,
                "finetune": self.finetune_steps}

    def supernet(self, family: Family, knobs: dict, data: SearchData) -> torch.nn.Module:
        """The trained supernet over `knobs` (the space's network knobs), from the cache or trained now."""
        from cimc.search.supernet import Trainer

        largest = {k: kb.largest() for k, kb in knobs.items()}
        smallest = {k: min(kb.values()) for k, kb in knobs.items()}
        domains = {k: kb.describe() for k, kb in knobs.items()}
        key = digest({"family": family.name, "args": family.args, "knobs": domains, "eval": self.signature(),
                      "data": data.signature()})
        if key in self._nets:
            return self._nets[key]
        build = lambda cfg: family.build(cfg, data.shape)[0]  # noqa: E731
        path = cache_dir() / "supernets" / f"{key}.pt"
        net = build(largest)
        if path.is_file():
            try:
                net.load_state_dict(torch.load(path, weights_only=True)["state"])
                self._nets[key] = net.eval()
                return net
            except Exception:
                pass
        noise = None
        if self.variation_sigma:
            from cimc.sim import Precision, Variation
            from cimc.train import NoisyWeight

            noise = NoisyWeight(Precision.of(load_target(self.target)), Variation(sigma=self.variation_sigma),
                                torch.Generator().manual_seed(self.seed + 7))

        def sample(rng):
            return {k: rng.choice(kb.values()) if kb.kind != "float" else rng.uniform(kb.low, kb.high)
                    for k, kb in knobs.items()}

        t0 = time.perf_counter()
        net = Trainer(build, largest, smallest, sample, epochs=self.epochs, batch=self.batch, lr=self.lr,
                      sandwich=self.sandwich, seed=self.seed, noise=noise, log=self.log).train(data.x_train,
                                                                                               data.y_train)
        self.train_seconds = time.perf_counter() - t0
        _save(path, {"state": net.state_dict(), "seconds": self.train_seconds, "knobs": domains})
        self._nets[key] = net
        return net

    def model(self, family, config, data, knobs=None):
        from cimc.search.supernet import extract

        if knobs is None:
            raise SpaceError("the supernet evaluator needs the space's network knobs (run it through search.run).")
        net = self.supernet(family, knobs, data)
        member, _ = family.build(config, data.shape)
        member = extract(net, member, data.x_train[:self.calib_samples])
        if self.finetune_steps:
            from cimc.train import fit

            n = min(len(data.x_train), self.finetune_steps * self.batch)
            fit(member, data.x_train[:n], data.y_train[:n], epochs=1, batch=self.batch, lr=self.lr / 10,
                seed=self.seed)
            member = extract(member, member, data.x_train[:self.calib_samples])
        return member, {"accuracy": float_accuracy(member, data.x_val, data.y_val)}


@dataclass
class Callback(Evaluator):
    """`fn(model, config) -> {metric: value}`: the user's own evaluator. `model` is the
    candidate built with random weights (seeded); fn may train it. `names` are the metrics fn
    gives (objectives and constraints may use them)."""

    fn: Callable = None
    names: tuple = ("accuracy",)
    seed: int = 0
    kind = "callback"

    def signature(self):
        return {"kind": self.kind, "fn": getattr(self.fn, "__qualname__", repr(self.fn)), "seed": self.seed}

    def model(self, family, config, data, knobs=None):
        torch.manual_seed(self.seed)
        model, _ = family.build(config, data.shape)
        out = self.fn(model, dict(config))
        if not isinstance(out, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in out.values()):
            raise SpaceError(f"the callback {self.signature()['fn']} must return {{metric: number}}, got {out!r}.")
        missing = sorted(set(self.names) - set(out))
        if missing:
            raise SpaceError(f"the callback {self.signature()['fn']} did not return {', '.join(missing)}.")
        return model.eval(), {k: float(v) for k, v in out.items()}

    def metrics(self):
        return tuple(self.names)


EVALUATORS = {"train": Train, "supernet": Supernet, "none": Untrained}


def from_table(table: dict, where: str) -> Evaluator:
    """An evaluator from a TOML table: kind = "train" | "supernet" | "none", and its fields."""
    table = dict(table)
    kind = table.pop("kind", "train")
    if kind not in EVALUATORS:
        raise SpaceError(f"{where}: evaluator kind '{kind}'; give one of {', '.join(EVALUATORS)} (a callback is "
                         "given from Python: search.Callback(fn)).")
    cls = EVALUATORS[kind]
    names = {f for f in cls.__dataclass_fields__ if f not in ("log",)}
    bad = sorted(set(table) - names)
    if bad:
        raise SpaceError(f"{where}: evaluator '{kind}' has no setting {', '.join(bad)}; it takes "
                         f"{', '.join(sorted(names))}.")
    for k, v in table.items():
        want = cls.__dataclass_fields__[k].type
        ok = {"int": isinstance(v, int) and not isinstance(v, bool), "bool": isinstance(v, bool),
              "float": isinstance(v, (int, float)) and not isinstance(v, bool), "str": isinstance(v, str)}.get(want, True)
        if not ok:
            raise SpaceError(f"{where}: evaluator setting '{k}' must be {want}, got {v!r}.")
    return cls(**table)
