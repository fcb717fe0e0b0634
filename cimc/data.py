"""Datasets for accuracy: scikit-learn's digits, Debian's Fashion-MNIST, or a user's .npz.

Every loader returns float32 images scaled to [0, 1] with a channel axis ([N, 1, H, W]),
and int64 labels; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cimc import files
from cimc.errors import CimcError

FASHION_DIR = Path(os.environ.get("CIMC_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_HINT = ("install it with: apt-get install -y dataset-fashion-mnist (Debian/Ubuntu), or set "
                "CIMC_FASHION_MNIST to a folder with the four idx .gz files")


class DataError(CimcError):
    """A dataset cannot be found, read, or does not fit the model."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the 'digits' dataset needs scikit-learn: pip install scikit-learn") from None
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))  # fixed split: 80% train, 20% test
    cut = int(len(x) * 0.8)
    tr, te = order[:cut], order[cut:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te])


def _idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"Fashion-MNIST file {path} not found; {FASHION_HINT}.") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip idx file ({e}).") from None
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path}: not an idx file of unsigned bytes.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: holds {body.size} values, its header says {dims}; the file is damaged.")
    return body.reshape(dims)


def _fashion() -> Dataset:
    if not FASHION_DIR.is_dir():
        raise DataError(f"Fashion-MNIST is not installed (no folder {FASHION_DIR}); {FASHION_HINT}.")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        parts[f"x_{split}"] = (_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz") / 255.0).astype(np.float32)[:, None]
        parts[f"y_{split}"] = _idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return Dataset("fashion-mnist", **parts)


def _npz(path: Path) -> Dataset:
    try:
        files.check_input(path, "data file", files.data_max_bytes(), missing=f"{path}: no such file. Give 'digits', "
                          "'fashion-mnist' or an .npz file with arrays x and y.")
        _check_members(path)
    except DataError:
        raise
    except CimcError as e:
        raise DataError(str(e)) from None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise DataError(f"{path}: cannot read it as .npz without pickle ({e}); save plain arrays x and y.") from None
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({e}).") from None
    if "x" in arrays and "y" in arrays:
        x, y = arrays["x"], arrays["y"]
    elif "x_test" in arrays and "y_test" in arrays:
        x, y = arrays["x_test"], arrays["y_test"]
    else:
        raise DataError(f"{path}: needs arrays 'x' and 'y' (or 'x_test' and 'y_test'); it has {sorted(arrays)}.")
    names = ("x", "y") if "x" in arrays and "y" in arrays else ("x_test", "y_test")
    x, y = check_arrays(x, y, path, *names)
    if ("x_train" in arrays) != ("y_train" in arrays):
        raise DataError(f"{path}: has {'x_train' if 'x_train' in arrays else 'y_train'} without its pair; give both "
                        "x_train and y_train, or neither.")
    if "x_train" in arrays:
        xtr, ytr = check_arrays(arrays["x_train"], arrays["y_train"], path, "x_train", "y_train", allow_empty=True)
    else:
        xtr, ytr = x[:0], y[:0]
    return Dataset(path.name, xtr, ytr, x, y)


def check_arrays(x, y, where, xname: str = "x", yname: str = "y", allow_empty: bool = False):
    """Images and labels a model can be scored on, as float32 [N, C, ...] and int64 [N]; else a
    DataError naming the array and what was expected."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: array '{xname}' holds {x.dtype} values; it must hold numbers (images).")
    if y.dtype.kind not in "biu":
        raise DataError(f"{where}: array '{yname}' holds {y.dtype} values; labels must be integers (class numbers).")
    if y.ndim != 1:
        hint = " (flatten it: y.ravel())" if y.ndim == 2 and y.shape[1] == 1 else ""
        raise DataError(f"{where}: array '{yname}' has shape {list(y.shape)}; labels are one per sample, shape "
                        f"[N]{hint}.")
    if x.ndim < 2:
        raise DataError(f"{where}: array '{xname}' has shape {list(x.shape)}; samples are [N, ...] with N first.")
    if len(x) != len(y):
        raise DataError(f"{where}: '{xname}' has {len(x)} samples and '{yname}' has {len(y)}; they must match.")
    if not len(x) and not allow_empty:
        raise DataError(f"{where}: '{xname}' and '{yname}' are empty; give at least one sample.")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: array '{yname}' has the label {int(y.min())}; labels are class numbers 0, 1, ...")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"{where}: array '{xname}' has {bad} values that are NaN or infinite; give finite inputs.")
    if x.ndim == 3:
        x = x[:, None]
    return x, y.astype(np.int64)


def _check_members(path: Path) -> None:
    """The arrays' uncompressed sizes, before any is expanded (a small file can inflate to GBs)."""
    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e}).") from None
    total, limit = sum(m.file_size for m in members), files.data_max_bytes()
    if total > limit:
        big = max(members, key=lambda m: m.file_size)
        raise DataError(f"{path}: its arrays expand to {files.size_text(total)} ('{big.filename}' alone "
                        f"{files.size_text(big.file_size)}), over the {files.size_text(limit)} cimc "
                        "loads; give a smaller data set.")


def load_dataset(name: str) -> Dataset:
    """'digits', 'fashion-mnist' or a path to an .npz with x and y (optionally x_train, y_train)."""
    if name == "digits":
        return _digits()
    if name in ("fashion-mnist", "fashion_mnist", "fmnist"):
        return _fashion()
    if name.endswith(".npz") or Path(name).exists():
        return _npz(Path(name))
    raise DataError(f"unknown dataset '{name}'; give 'digits', 'fashion-mnist' or an .npz file with arrays x and y.")


def fit_inputs(x: np.ndarray, shape: tuple, model: str, data: str) -> np.ndarray:
    """x reshaped to the model's input shape (batch first), or a clear error."""
    want = tuple(int(d) for d in shape[1:])
    have = tuple(x.shape[1:])
    if have == want:
        return x
    if int(np.prod(have)) == int(np.prod(want)):
        return x.reshape(len(x), *want)
    raise DataError(f"{model}: its input takes {list(want)} ({int(np.prod(want))} values) per sample but '{data}' "
                    f"gives {list(have)} ({int(np.prod(have))} values); use data that fits the model.")
