"""A joint network + hardware search from Python, to copy and change: your own network
builder, your own accuracy (a callback), accuracy under device variation on the compiled
mapping, and a constraint on the chip's area.

    .venv/bin/python examples/search/joint_search.py [--trials 16] [--out runs/joint]
"""

import argparse

import torch
from torch import nn

import cimc.train
from cimc import search


def build(config) -> nn.Module:
    """Any torch network; the knobs it reads are the candidate's identity."""
    layers, cin = [], 1
    for i in range(config["convs"]):
        layers += [nn.Conv2d(cin, config["width"], config["kernel"], padding=config["kernel"] // 2), nn.ReLU()]
        cin = config["width"]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * cin, 10))


def train_and_score(data: search.SearchData):
    def fn(model, config):  # the callback: trains `model` in place and says how good it is
        cimc.train.fit(model, data.x_train, data.y_train, epochs=6, lr=0.01, seed=0)
        return {"accuracy": cimc.train.accuracy(model, data.x_val, data.y_val)}
    return fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--out", default="runs/joint")
    args = ap.parse_args()
    data = search.SearchData.load("digits")
    space = search.Space(
        network=search.Family.custom("my_cnn", build, {"convs": [1, 2, 3], "width": [8, 16, 32], "kernel": [3, 5]}),
        hardware={"xbar_rows": [64, 128, 256], "adc_bits": range(4, 9), "device": ["rram-1bit", "rram-2bit"],
                  "tiles": (1, 16)},
        target="rram-256", data="digits",
        chip=search.Chip(draws=3, samples=200))  # 3 programmed chips per candidate, 200 validation images
    result = search.run(space,
                        objectives={"accuracy_variation_p5": "max", "energy_nj": "min", "chip_area_mm2": "min"},
                        constraints={"chip_area_mm2": ("<=", 10.0)},
                        evaluator=search.Callback(train_and_score(data), ("accuracy",)),
                        trials=args.trials, seed=0, out=args.out)
    print(result.table())
    for p in result.pareto():
        print(p.trial, p.config, "->", p.mapping_path)


if __name__ == "__main__":
    main()
