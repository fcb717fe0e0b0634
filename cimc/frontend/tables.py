"""Which ONNX ops cimc reads and what each becomes: aliases, activations, element-wise, pooling,
reductions, norms, softmax, data movement, interpolation, shape-only ops."""

from __future__ import annotations

ALIAS_OPS = {"Identity", "Dropout"}


# element operations per output element for activations
ACT_OPS = {
    "Relu": 1, "LeakyRelu": 1, "PRelu": 1, "Clip": 1, "ThresholdedRelu": 1, "Shrink": 1, "Neg": 1, "Abs": 1,
    "Sign": 1, "Floor": 1, "Ceil": 1, "Round": 1, "Not": 1, "Cast": 1, "IsNaN": 1, "IsInf": 1,
    "HardSigmoid": 2, "Softsign": 2, "Sqrt": 2, "Reciprocal": 2, "HardSwish": 3,
    "Sigmoid": 4, "Tanh": 4, "Elu": 4, "Selu": 4, "Celu": 4, "Erf": 4, "Softplus": 4, "Exp": 4, "Log": 4,
    "Sin": 4, "Cos": 4, "Gelu": 8, "Mish": 8, "FastGelu": 8, "QuickGelu": 5,
}


ELTWISE_OPS = {
    "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow", "Where", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Mod", "BitShift", "BitwiseAnd", "BitwiseOr",
    "BitwiseXor", "Affine", "ScaledTanh",
}


WINDOW_POOL_OPS = {"MaxPool", "AveragePool", "LpPool"}


REDUCE_OPS = {
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
    "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
}


NORM_OPS = {"BatchNormalization": 2, "InstanceNormalization": 5, "LayerNormalization": 8, "GroupNormalization": 5,
            "LpNormalization": 3, "MeanVarianceNormalization": 5, "SimplifiedLayerNormalization": 6,
            "SkipLayerNormalization": 9}


SOFTMAX_OPS = {"Softmax": 3, "LogSoftmax": 4, "Hardmax": 2}


MOVE_OPS = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Gather", "Pad",
            "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "GatherElements", "GatherND", "ScatterND",
            "ScatterElements", "ReverseSequence", "Compress", "CenterCropPad"}


INTERP_OPS = {"Resize", "Upsample"}


# ops whose output is known without running them once their inputs' shapes are static
SHAPE_ONLY_OPS = {"Shape", "Size"}


