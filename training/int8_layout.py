"""Rewrites of an int8 (QDQ) graph that move fewer bytes and leave every integer it computes the same.

    python -m training.int8_layout MODEL-int8.onnx [--out OUT.onnx]     (in place without --out)

ONNX Runtime runs the int8 convolutions channels-last; what PyTorch exports around them is data
movement that its CPU kernels do slowly. Measured on v2-int8 (a 704 x 704 window, 2 threads of a
2-core Intel Xeon, ONNX Runtime 1.32): 42 ms a window before, 28 ms after, the same bytes out.

- **The input's pixel unshuffle** is exported as reshapes around a 6-D transpose, a generic one
  that took a fifth of the run. It becomes one SpaceToDepth on the *quantised* input (a quarter of
  the bytes of float), and the first convolution's input channels are permuted to SpaceToDepth's
  block-major order.
- **A convolution with a ragged channel count** (the heads: v2's 12 outputs, v3's 3) runs up to 5x
  slower than one with 16 in ONNX Runtime's uint8 kernels. Its filters are padded with zeros to the
  next multiple of 16 and the extra channels sliced off, still quantised.
- **The output's pixel shuffle** (DepthToSpace) moves the quantised bytes, before the final
  DequantizeLinear, instead of float values after it.

Each rewrite is exact: a permutation commutes with a per-tensor (de)quantisation, the permuted or
padded weights are the same int8 numbers, and integer sums do not depend on their order.
:func:`rewrite` checks it: it runs the graph before and after on random inputs and refuses a
result that differs by a single bit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Output channels that ONNX Runtime's uint8 convolution kernels handle at full speed come in
#: multiples of this.
CHANNEL_MULTIPLE = 16

# PyTorch's PixelUnshuffle exports as a 6-D transpose of N x C x H/r x r x W/r x r with this order.
_UNSHUFFLE_PERM = [0, 1, 3, 5, 2, 4]


class _Graph:
    """Producer, consumer and initializer lookups over an ONNX graph being edited."""

    def __init__(self, proto: Any) -> None:
        self.proto, self.graph = proto, proto.graph
        self.inits = {t.name: t for t in self.graph.initializer}

    def producer(self, name: str) -> Any | None:
        return next((n for n in self.graph.node if name in n.output), None)

    def consumers(self, name: str) -> list[Any]:
        return [n for n in self.graph.node if name in n.input]

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def put(self, name: str, value: np.ndarray) -> None:
        from onnx import numpy_helper

        self.inits[name].CopyFrom(numpy_helper.from_array(value, name))

    def add_constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(value, name))
        self.inits[name] = self.graph.initializer[-1]
        return name

    def insert_after(self, anchor: Any, node: Any) -> None:
        self.graph.node.insert(list(self.graph.node).index(anchor) + 1, node)

    def outputs(self) -> set[str]:
        return {o.name for o in self.graph.output}


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _conv_weights(g: _Graph, conv: Any) -> tuple[str, list[str]] | None:
    """The int8 weight initializer of a QDQ convolution and the per-output-channel initializers
    that go with it (scales, zero points, the quantised bias and its scales)."""
    dq = g.producer(conv.input[1])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in g.inits:
        return None
    per_channel = [i for i in dq.input[1:] if i in g.inits]
    if len(conv.input) > 2:
        bias_dq = g.producer(conv.input[2])
        if bias_dq is not None and bias_dq.op_type == "DequantizeLinear":
            per_channel += [i for i in bias_dq.input if i in g.inits]
    return dq.input[0], per_channel


def unshuffle_to_space_to_depth(g: _Graph) -> int:
    """The 6-D-transpose pixel unshuffle in front of a QuantizeLinear as SpaceToDepth on its
    quantised bytes; returns how many were rewritten."""
    from onnx import helper

    done = 0
    for transpose in [n for n in g.graph.node if n.op_type == "Transpose"]:
        if list(_attr(transpose, "perm") or []) != _UNSHUFFLE_PERM:
            continue
        chain, head = [transpose], transpose
        while (p := g.producer(head.input[0])) is not None and p.op_type in ("Reshape", "Unsqueeze"):
            chain.insert(0, p)
            head = p
        tail = transpose
        while len(c := g.consumers(tail.output[0])) == 1 and c[0].op_type in ("Reshape", "Squeeze"):
            chain.append(c[0])
            tail = c[0]
        after = g.consumers(tail.output[0])
        if len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        quant = after[0]
        dqs = g.consumers(quant.output[0])
        convs = [c for d in dqs for c in g.consumers(d.output[0])]
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs) or not convs or any(
                c.op_type != "Conv" for c in convs):
            continue
        found = [_conv_weights(g, c) for c in convs]
        weights = [w for w in found if w is not None]
        if len(weights) != len(found):
            continue
        if any(len(g.consumers(n.output[0])) != 1 for n in chain[:-1]):
            continue  # an intermediate of the unshuffle is read elsewhere: leave it
        source = head.input[0]
        c4 = g.array(weights[0][0]).shape[1]
        block = 2
        channels = c4 // (block * block)
        if channels * block * block != c4:
            continue
        # SpaceToDepth's channel (i * r + j) * C + c holds what the unshuffle put at c * r * r + i * r + j
        perm = np.array([c * block * block + p for p in range(block * block) for c in range(channels)])
        for name, _ in weights:
            g.put(name, g.array(name)[:, perm])
        quantised = quant.output[0]
        for n in chain:
            g.graph.node.remove(n)
        quant.input[0] = source
        quant.output[0] = quantised + "_before_space_to_depth"
        g.insert_after(quant, helper.make_node(
            "SpaceToDepth", [quant.output[0]], [quantised], blocksize=block,
            name=(transpose.name or "unshuffle") + "_space_to_depth"))
        done += 1
    return done


def _output_chain(g: _Graph, quant: Any) -> list[Any] | None:
    """From a QuantizeLinear to a graph output: its DequantizeLinear, then DepthToSpace nodes."""
    nodes, tensor = [], quant.output[0]
    while True:
        users = g.consumers(tensor)
        if len(users) != 1:
            return None
        nodes.append(users[0])
        tensor = users[0].output[0]
        if tensor in g.outputs():
            break
        if users[0].op_type not in ("DequantizeLinear", "DepthToSpace"):
            return None
    if nodes[0].op_type != "DequantizeLinear" or any(n.op_type != "DepthToSpace" for n in nodes[1:]):
        return None
    return nodes


def output_shuffle_on_bytes(g: _Graph) -> int:
    """A graph output made by QuantizeLinear -> DequantizeLinear -> DepthToSpace...: the
    DepthToSpace nodes moved before the DequantizeLinear. Returns how many outputs were rewritten."""
    done = 0
    for quant in [n for n in g.graph.node if n.op_type == "QuantizeLinear"]:
        chain = _output_chain(g, quant)
        if chain is None or len(chain) < 2:
            continue
        dequant, shuffles = chain[0], chain[1:]
        final = shuffles[-1].output[0]
        shuffles[0].input[0] = quant.output[0]
        shuffles[-1].output[0] = final + "_quantised"
        dequant.input[0] = shuffles[-1].output[0]
        dequant.output[0] = final
        g.graph.node.remove(dequant)
        g.insert_after(shuffles[-1], dequant)
        done += 1
    return done


def pad_ragged_convolutions(g: _Graph) -> int:
    """Each int8 convolution whose output channels are not a multiple of :data:`CHANNEL_MULTIPLE`
    (a head: v2's 12, v3's 3) padded with zero filters to the next multiple, the extra channels
    sliced off its quantised output. Returns how many were padded."""
    from onnx import helper

    done = 0
    for conv in [n for n in g.graph.node if n.op_type == "Conv"]:
        users = g.consumers(conv.output[0])
        found = _conv_weights(g, conv)
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or found is None:
            continue
        quant, (weight, per_channel) = users[0], found
        w = g.array(weight)
        out_channels = w.shape[0]
        extra = -out_channels % CHANNEL_MULTIPLE
        if extra == 0 or int(_attr(conv, "group") or 1) != 1:
            continue
        g.put(weight, np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)]))
        for name in per_channel:
            a = g.array(name)
            if a.ndim == 1 and a.shape[0] == out_channels:
                # a padded filter's scale must be non-zero; its zero weights give 0 whatever it is
                fill = np.repeat(a[:1], extra) if "scale" in name else np.zeros(extra, a.dtype)
                g.put(name, np.concatenate([a, fill]))
        base = conv.name or weight
        starts = g.add_constant(base + "_slice_starts", np.array([0], np.int64))
        ends = g.add_constant(base + "_slice_ends", np.array([out_channels], np.int64))
        axes = g.add_constant(base + "_slice_axes", np.array([1], np.int64))
        tensor, sliced = quant.output[0], quant.output[0] + "_sliced"
        for user in g.consumers(tensor):
            user.input[:] = [sliced if i == tensor else i for i in user.input]
        g.insert_after(quant, helper.make_node("Slice", [tensor, starts, ends, axes], [sliced],
                                               name=base + "_slice"))
        done += 1
    return done


def _feeds(proto: Any, seed: int, size: int = 64) -> dict[str, np.ndarray]:
    """Random inputs of the graph's float input shapes (dynamic spatial sizes as ``size``)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in proto.graph.input:
        dims = [d.dim_value if d.dim_value > 0 else (1 if i == 0 else size)
                for i, d in enumerate(inp.type.tensor_type.shape.dim)]
        # past the clip range and below zero too: a declipping model's inputs are clip-normalised
        feeds[inp.name] = rng.uniform(-0.2, 1.6, dims).astype(np.float32)
    return feeds


def _run(proto: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def rewrite(proto: Any, checks: int = 3) -> tuple[Any, str]:
    """A copy of the int8 graph ``proto`` with the rewrites above, and a line saying which were
    made. Raises ``ValueError`` if the rewritten graph's output differs from the original's on any
    of ``checks`` random inputs."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = _Graph(out)
    unshuffles = unshuffle_to_space_to_depth(g)
    shuffles = output_shuffle_on_bytes(g)  # before the padding: it looks for Quantize -> Dequantize
    padded = pad_ragged_convolutions(g)
    onnx.checker.check_model(out)
    for seed in range(checks):
        feeds = _feeds(proto, seed)
        for a, b in zip(_run(proto, feeds), _run(out, feeds), strict=True):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError("the rewritten int8 graph does not compute what the original does")
    made = [f"{unshuffles} pixel unshuffle(s) as SpaceToDepth on quantised bytes"] if unshuffles else []
    if padded:
        made.append(f"{padded} convolution(s) padded to a multiple of {CHANNEL_MULTIPLE} output channels")
    if shuffles:
        made.append(f"{shuffles} output pixel shuffle(s) on quantised bytes")
    return out, "; ".join(made) or "none"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.int8_layout", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an int8 model written by training.quantize")
    p.add_argument("--out", type=Path, help="write here (default: replace MODEL)")
    args = p.parse_args(argv)
    try:
        import onnx

        if not args.model.is_file():
            raise FileNotFoundError(f"model not found: {args.model}")
        proto = onnx.load(str(args.model))
        meta = {m.key: m.value for m in proto.metadata_props}
        if meta.get("precision") != "int8":
            precision = meta.get("precision", "unknown")
            raise ValueError(f"{args.model}: not an int8 model (precision {precision!r})")
        rewritten, made = rewrite(proto)
        if made == "none":
            print(f"{args.model}: nothing to rewrite")
            return 0
        from training.export import set_metadata

        set_metadata(rewritten, meta | {"int8_layout": made}, "libdeclip training.int8_layout")
        out = args.out or args.model
        tmp = out.with_name(out.name + ".tmp")
        onnx.save(rewritten, str(tmp))
        os.replace(tmp, out)
        print(f"wrote {out}: {made}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
