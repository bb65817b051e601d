"""Measures a trained net from its exported program, in a fresh sandbox where no candidate runs.

The training process is the candidate's: whatever it reports (parameters, FLOPs, latency) it can
rewrite. So the runner also writes the trained net as a torch.export program (`net.pt2`: an ATen
graph and its weights), and this file, copied into a new job as its `runner.py`, loads that
program and measures it: parameters from its weights, FLOPs by running it under torch's counter,
the median batch-1 latency, and the validation predictions the host scores. What the host scores
and what it measures are therefore one and the same net, whichever net the candidate exported.

The program file is hostile too: torch.export.load falls back to full unpickling, resolves any
`torch.*` attribute path as an op, and evaluates shape expressions with sympy. So before loading,
every op target must be an ATen or `operator` op, every expression plain arithmetic, and
torch.load only ever loads tensors. Self-contained (stdlib + torch), like runner.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zipfile
from typing import Any

import torch

PROGRAM = "net.pt2"
MAX_GRAPH_BYTES = 64 * 2**20
_SAFE_TARGET = re.compile(r"(torch\.ops\.aten|_operator)\.[A-Za-z0-9_.]+")
_EXPR_CHARS = re.compile(r"[A-Za-z0-9_ +\-*/%().,<>=!']*")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOL_NAME = re.compile(r"[a-z]+[0-9]+")  # s0, s77, u3: the names torch gives sizes
# sympy's names that shape expressions use; anything else (exec, open, eval...) is refused, as
# sympy evaluates these strings with Python's eval
_EXPR_WORDS = {
    *("Symbol", "Integer", "Rational", "Float", "positive", "integer", "nonnegative", "real"),
    *("True", "False", "oo", "Max", "Min", "Mod", "Abs", "floor", "ceiling", "Eq", "Ne"),
    *("Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "FloorDiv", "CleanDiv", "PythonMod"),
    *("CeilToInt", "FloorToInt", "TruncToInt", "IntTrueDiv", "FloatTrueDiv", "ToFloat"),
}


class Unverifiable(Exception):
    """The program cannot be measured safely; the host keeps the self-reported figures."""


def check_program(path: str) -> None:
    """Refuse a program whose graph names anything but ATen/operator ops or plain expressions."""
    with zipfile.ZipFile(path) as archive:
        graphs = [i for i in archive.infolist() if i.filename.endswith(".json")]
        for info in graphs:
            if info.file_size > MAX_GRAPH_BYTES:
                raise Unverifiable(f"{info.filename} is {info.file_size} bytes")
            text = archive.read(info).decode("utf-8")
            for key, value in strings(json.loads(text)):
                if key == "target" and not _SAFE_TARGET.fullmatch(value):
                    raise Unverifiable(f"the graph calls {value[:80]!r}, not an ATen op")
                if key in ("expr_str", "range_constraints") and not plain_expression(value):
                    raise Unverifiable(f"the graph has an expression {value[:80]!r}")


def plain_expression(text: str) -> bool:
    """Whether a shape expression holds only arithmetic, sympy's shape words and size names."""
    if not _EXPR_CHARS.fullmatch(text) or "__" in text:
        return False
    words = _WORD.findall(text)
    return all(w in _EXPR_WORDS or _SYMBOL_NAME.fullmatch(w) for w in words)


def strings(node: Any, key: str = "") -> Any:
    """(key, string) for every string value (and range-constraint key) in a JSON tree."""
    stack = [(key, node)]
    while stack:
        key, node = stack.pop()
        if isinstance(node, str):
            yield key, node
        elif isinstance(node, dict):
            for k, v in node.items():
                if key == "range_constraints":
                    yield "range_constraints", k
                stack.append((k, v))
        elif isinstance(node, list):
            stack.extend((key, v) for v in node)


def load_program(path: str) -> Any:
    check_program(path)
    plain_load = torch.load

    def tensors_only(*args: Any, **kwargs: Any) -> Any:  # no fallback to full unpickling
        return plain_load(*args, **{**kwargs, "weights_only": True})

    torch.load = tensors_only
    try:
        return torch.export.load(path)
    finally:
        torch.load = plain_load


def count_params(program: Any) -> int:
    seen, total = set(), 0
    for name in program.graph_signature.parameters:
        tensor = program.state_dict[name]
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel()
    return total


def measure(cfg: dict[str, Any], job: str, data: str, out: str) -> dict[str, Any]:
    started = time.perf_counter()
    program = load_program(os.path.join(job, PROGRAM))
    net = program.module()
    c, h, w = cfg["input_shape"]
    mean = torch.tensor(cfg.get("mean") or [0.5] * c).view(1, c, 1, 1)
    std = torch.tensor(cfg.get("std") or [0.5] * c).view(1, c, 1, 1)
    report: dict[str, Any] = {"status": "ok", "kind": "ok", "params": count_params(program)}
    images = torch.load(os.path.join(data, "val_images.pt"), weights_only=True, mmap=True)
    batch = int(cfg.get("eval_batch_size") or 500)
    preds = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = images[start : start + batch].float() / 255.0
            logits = net((x - mean) / std)
            if tuple(logits.shape) != (len(x), cfg["num_classes"]):
                raise Unverifiable(f"the program's output has shape {tuple(logits.shape)}")
            preds.append(logits.argmax(1))
        predictions = [int(p) for p in torch.cat(preds)] if preds else []
        one = torch.zeros(1, c, h, w)
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            net(one)
        report["flops"] = int(counter.get_total_flops())
        times = []
        for i in range(2 + int(cfg.get("latency_runs") or 10)):
            t = time.perf_counter()
            net(one)
            if i >= 2:
                times.append(time.perf_counter() - t)
    times.sort()
    report["latency_ms"] = times[len(times) // 2] * 1000
    report["timings"] = {"verify_s": time.perf_counter() - started}
    with open(os.path.join(out, "predictions.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(predictions))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--job", "--data", "--out"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    with open(os.path.join(args.job, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    try:
        report = measure(cfg, args.job, args.data, args.out)
    except BaseException as exc:  # a program we cannot measure: the host labels self-reported
        text = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
        report = {"status": "error", "kind": "runtime", "message": text}
    with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(report))
    print(f"[verifier] {report.get('status')}: {report.get('message', '')}", file=sys.stderr)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
