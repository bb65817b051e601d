"""One-epoch proxy trainer that runs INSIDE the sandbox, next to one untrusted candidate.

Self-contained on purpose (stdlib + torch): this file is copied into every job and is the only
nasloop code the sandbox ever sees. It reads `<job>/config.json` and `<job>/candidate.py`, trains
the candidate's `Net` for the configured epochs on `<data>` and writes two files to `<out>`:

- `predictions.json`: one predicted class per validation image. Never a score: the validation
  labels stay on the host, which computes accuracy itself, so nothing printed or written here can
  forge a result.
- `report.json`: status, failure kind, message and traceback tail, parameter/FLOP counts, timings.

With `"mode": "dry_run"` in the config it stops after the cheap checks (import, build `Net`, one
forward pass on two dummy images, output shape): no data is read, nothing is trained, and only the
report is written. Either way a failed forward pass is explained by a shape trace (ShapeTrace).
A dry run that passed also reports the layers no gradient reaches (`dead_layers`) and the
network's architecture fingerprint (`fingerprint`): see probe_dry_run.

Defaults are the reference paper's protocol (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
128, random crop + horizontal flip), but data never goes through a DataLoader: the prepared uint8
tensors are loaded once, moved to the device, and normalised/augmented there in whole batches.
Evidence (2-core CPU, 50k 32x32 images, small CNN): DataLoader 60 s, preloaded + channels_last
37-42 s, + bf16 autocast 21 s at equal accuracy.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import inspect
import json
import math
import os
import sys
import time
import traceback
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Saved before the candidate runs, so that a candidate which monkeypatches builtins or json cannot
# silently change how the report is written (it can still forge predictions, which earns nothing).
_open = open
_dumps = json.dumps

# Printed, alone on its line, right before the candidate is imported (a copy of
# sandbox.backends.base.CANDIDATE_MARKER: this file imports nothing of ours). The host watches the
# output stream for it: a job that ends without it failed in our code or our sandbox, before any
# candidate code ran, and is not charged to the candidate.
CANDIDATE_MARKER = "[runner] importing the candidate"

FAILURE_KINDS = (
    "syntax",
    "no_net",
    "import",
    "shape",
    "oom",
    "timeout",
    "nan",
    "runtime",
    "killed",
    "over_limit",  # decided on the host, after scoring (hardware limits); never here
)

# Substrings of torch error messages that mean "tensor shapes do not fit together".
_SHAPE_HINTS = (
    "shape",
    "size mismatch",
    "sizes of tensors must match",
    "must match the size",
    "expected input",
    "expected 4d",
    "expected 3d",
    "expected 2d",
    "input size",
    "output size is too small",
    "kernel size can't be greater",
    "padded input size",
    "dimension out of range",
    "expected more than 1 value per channel",
    "to have",
    "channels",
    "mat1 and mat2",
)
MAX_NAMES = 32  # module names in one report list (unused_lazy, dead_layers)
_OOM_HINTS = (
    "out of memory",
    "can't allocate memory",
    "defaultcpuallocator",
    "cannot allocate memory",
)

DEFAULTS: dict[str, Any] = {
    "mode": "train",  # train | dry_run (stop after the forward check: the search's cheap stage)
    "num_classes": 10,
    "input_shape": [3, 32, 32],
    "mean": None,  # per channel, in 0..1; None means 0.5
    "std": None,
    "flip": True,
    "crop_pad": 4,
    "train_limit": None,  # use only the first N training images (quick runs and tests)
    "epochs": 1,
    "batch_size": 128,
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "nesterov": False,
    # "epoch_cosine" is the reference code's CosineAnnealingLR stepped once per epoch, i.e. a
    # constant rate within a single epoch; "step_cosine" decays to zero over all steps.
    "lr_schedule": "epoch_cosine",
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
    "channels_last": True,
    "autocast": "auto",  # auto | off | bf16 | fp16 (see resolve_autocast)
    "cudnn_benchmark": True,
    "gpu_memory_fraction": None,  # cap this process's share of the GPU (an LLM may share it)
    "threads": 0,  # torch intra-op threads; 0 keeps torch's default
    "eval_batch_size": 500,
    "nan_check_every": 25,  # steps between finiteness checks (each one syncs the GPU)
    "latency_runs": 10,  # timed batch-1 forward passes after training (their median is reported)
    "save_weights": False,  # write the trained state_dict to <out>/weights.pt (the final test)
    "max_weights_mb": 256,  # ...unless it is larger than this
    # write the trained net as a torch.export program to <out>/net.pt2, which a fresh process
    # without the candidate's code measures (the verifier): set when a hardware limit is on
    "export": False,
}


class CandidateFailure(Exception):
    """A classified failure of the candidate, raised by the phase that detected it."""

    def __init__(self, kind: str, message: str, tb: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.tb = tb


def log(message: str) -> None:
    print(f"[runner] {message}", file=sys.stderr, flush=True)


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def traceback_tail(exc: BaseException, lines: int = 12) -> str:
    """The last frames of a traceback, which is what an LLM needs to fix its code."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip().splitlines()[-lines:])


def classify_exception(exc: BaseException, phase: str) -> CandidateFailure:
    """Map an exception raised while running candidate code to a failure kind."""
    text = str(exc).lower()
    tail = traceback_tail(exc)
    if isinstance(exc, MemoryError) or any(h in text for h in _OOM_HINTS):
        kind = "oom"
    elif isinstance(exc, SystemExit):
        return CandidateFailure(
            "runtime", f"the candidate called sys.exit({exc.code}) during {phase}", tail
        )
    elif isinstance(exc, ImportError) and phase == "import":
        kind = "import"
    elif phase in ("forward", "train", "predict") and any(h in text for h in _SHAPE_HINTS):
        kind = "shape"
    else:
        kind = "runtime"
    return CandidateFailure(kind, f"{one_line(exc)} (during {phase})", tail)


def load_candidate(path: str) -> types.ModuleType:
    with _open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        code = compile(source, "candidate.py", "exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        text = (exc.text or "").strip()
        detail = f": {text}" if text else ""
        raise CandidateFailure("syntax", f"SyntaxError: {exc.msg} at {where}{detail}") from None
    module = types.ModuleType("candidate")
    module.__file__ = path
    sys.modules["candidate"] = module
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        raise classify_exception(exc, "import") from None
    return module


def build_net(module: types.ModuleType, num_classes: int) -> nn.Module:
    net_cls = getattr(module, "Net", None)
    if net_cls is None:
        raise CandidateFailure(
            "no_net", "the module defines no `Net` (expected class Net(nn.Module))"
        )
    if not (isinstance(net_cls, type) and issubclass(net_cls, nn.Module)):
        raise CandidateFailure(
            "no_net", f"`Net` is {type(net_cls).__name__}, not an nn.Module class"
        )
    try:
        params = inspect.signature(net_cls).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {"num_classes": num_classes} if "num_classes" in params or takes_kwargs else {}
    except (TypeError, ValueError):
        kwargs = {}
    try:
        return net_cls(**kwargs)
    except BaseException as exc:
        raise classify_exception(exc, "init") from None


class ShapeTrace:
    """Each module call's output shape, in the order the calls finish, while a forward pass runs.

    Global forward hooks see every module the net calls, one built inside `forward` included
    (`nn.Linear(x.shape[1], 10)(x)`, a habit of small code models); a module is named by its path
    in the net ("features.0"), "" being `Net.forward` itself and "?" a module the net does not
    hold. The hooks also run when a call raises (always_call), innermost first, so the call to
    blame is the innermost one that raised the very exception the forward pass ended with (not
    one the candidate caught and went on). Sequential containers are left out (their output is
    their last child's). Bounded, as a forward may loop: the first HEAD and the last TAIL calls
    are kept, the ones between only counted.
    """

    HEAD, TAIL = 12, 36
    TEXT_LIMIT = 1500  # characters of trace in a failure message

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.names = {id(m): name for name, m in net.named_modules()}
        self.head: list[dict[str, Any]] = []
        self.tail: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.TAIL)
        self.dropped = 0
        self.open: list[tuple[nn.Module, list[int] | None]] = []  # started, not yet finished
        # the innermost call that raised, its input shape, and the exception it raised
        self.raised: tuple[nn.Module, list[int] | None, BaseException] | None = None
        self.handles: list[Any] = []

    def __enter__(self) -> ShapeTrace:
        from torch.nn.modules import module as torch_module

        self.handles = [
            torch_module.register_module_forward_pre_hook(self._started),
            torch_module.register_module_forward_hook(self._finished, always_call=True),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()

    def _started(self, module: nn.Module, args: Any) -> None:
        self.open.append((module, _first_shape(args)))

    def _finished(self, module: nn.Module, args: Any, output: Any) -> None:
        in_shape = None
        while self.open:  # normally the top; deeper if a hook was skipped (torch.compile)
            started, in_shape = self.open.pop()
            if started is module:
                break
        error = sys.exc_info()[1]
        if output is None and error is not None:  # torch calls us from its `except` clause
            if self.raised is None or self.raised[2] is not error:
                self.raised = (module, in_shape, error)  # the innermost: the first to see it
            return
        if module is not self.net and not isinstance(module, nn.Sequential):
            self._add(self._step(module, _first_shape(output)))

    def _step(self, module: nn.Module, out: list[int] | None) -> dict[str, Any]:
        name = self.names.get(id(module), "?")
        return {"module": name, "type": type(module).__name__, "out": out}

    def _add(self, step: dict[str, Any]) -> None:
        if len(self.head) < self.HEAD:
            self.head.append(step)
            return
        if len(self.tail) == self.TAIL:
            self.dropped += 1
        self.tail.append(step)

    def fail(self, error: BaseException, x: torch.Tensor) -> None:
        """Record the call that raised `error`: a module's, or else Net.forward's own code."""
        if self.raised is not None and self.raised[2] is error:
            module, in_shape, _ = self.raised
        else:
            module, in_shape = self.net, list(x.shape)
        step = self._step(module, None)
        step["failed"] = True
        if in_shape is not None:
            step["in_shape"] = in_shape
            # a Linear fed (B, F) with F != in_features: F is what in_features must be
            linear = isinstance(module, nn.Linear) and len(in_shape) == 2
            if linear and in_shape[1] != module.in_features:
                step["in_features_expected"] = in_shape[1]
        self._add(step)

    def steps(self) -> list[dict[str, Any]]:
        return self.head + list(self.tail)

    def text(self) -> str:
        """One line: `features.0 Conv2d -> (2, 32, 28, 28); ...; fc Linear FAILED on (2, 4096)`."""
        parts = [_step_text(step) for step in self.head]
        if self.dropped:
            parts.append(f"... ({self.dropped} calls not shown)")
        parts += [_step_text(step) for step in self.tail]
        text = "; ".join(parts)
        if len(text) > self.TEXT_LIMIT:  # keep both ends: the start explains, the end failed
            half = self.TEXT_LIMIT // 2
            text = text[:half] + " ... " + text[-half:]
        return text


def _first_shape(value: Any) -> list[int] | None:
    """The shape of a tensor, or of the first tensor in a tuple/list (an LSTM's output)."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, tuple | list):
        for item in value[:4]:
            if isinstance(item, torch.Tensor):
                return list(item.shape)
    return None


def _step_text(step: dict[str, Any]) -> str:
    name = step["module"] or "(Net.forward)"
    if not step.get("failed"):
        out = "no tensor" if step["out"] is None else str(tuple(step["out"]))
        return f"{name} {step['type']} -> {out}"
    text = f"{name} {step['type']} FAILED"
    if "in_shape" in step:
        text += f" on input {tuple(step['in_shape'])}"
    if "in_features_expected" in step:
        text += f" (in_features must be {step['in_features_expected']})"
    return text


def check_output_shape(
    net: nn.Module, x: torch.Tensor, num_classes: int, report: dict[str, Any]
) -> None:
    """A dummy forward pass: the net must map (B, C, H, W) to (B, num_classes) logits.

    A failure's message carries the shape trace, and `report["shape_trace"]` its steps.
    """
    net.eval()
    trace = ShapeTrace(net)
    try:
        with torch.no_grad(), trace:
            out = net(x)
    except BaseException as exc:
        trace.fail(exc, x)
        report["shape_trace"] = trace.steps()
        failure = classify_exception(exc, "forward")
        failure.message += f"; shape trace: {trace.text()}"
        raise failure from None
    report["shape_trace"] = trace.steps()
    expected = (x.shape[0], num_classes)
    if not isinstance(out, torch.Tensor):
        raise CandidateFailure(
            "shape",
            f"Net returned {type(out).__name__}, expected a tensor {expected}"
            f"; shape trace: {trace.text()}",
        )
    if tuple(out.shape) != expected:
        raise CandidateFailure(
            "shape",
            f"Net output has shape {tuple(out.shape)}, expected {expected}"
            f" for input {tuple(x.shape)}; shape trace: {trace.text()}",
        )


def channels_last_works(net: nn.Module, x: torch.Tensor) -> bool:
    """Whether the net's forward accepts channels_last tensors.

    channels_last is faster, but the everyday `x.view(x.size(0), -1)` flatten fails on it ("view
    size is not compatible with input tensor's size and stride"). Such a net is correct, so it
    trains in the default layout instead of failing for a layout it never asked for.
    """
    try:
        with torch.no_grad():
            net.to(memory_format=torch.channels_last)(
                x.contiguous(memory_format=torch.channels_last)
            )
        return True
    except RuntimeError as exc:
        if "view" not in str(exc):
            raise classify_exception(exc, "forward") from None
        log("channels_last off for this candidate: its forward needs contiguous tensors")
        net.to(memory_format=torch.contiguous_format)
        return False


def count_flops(net: nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs for one image, as torch.utils.flop_counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x[:1])
    return int(counter.get_total_flops())


def augment(x: torch.Tensor, flip: bool, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, per image, on whole batches."""
    b, _, h, w = x.shape  # (B, C, H, W)
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if flip:
        mask = torch.rand(b, generator=gen, device=gen.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


class Normalizer:
    """uint8 (B, C, H, W) -> float normalised, in the layout the net trains with."""

    def __init__(self, cfg: dict[str, Any], device: torch.device) -> None:
        c = cfg["input_shape"][0]
        mean = torch.tensor(cfg["mean"] or [0.5] * c, device=device).view(1, c, 1, 1)
        std = torch.tensor(cfg["std"] or [0.5] * c, device=device).view(1, c, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = mean / std
        self.memory_format = (
            torch.channels_last if cfg["channels_last"] else torch.contiguous_format
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale - self.shift
        return x.contiguous(memory_format=self.memory_format)


def pick_device(cfg: dict[str, Any]) -> torch.device:
    want = cfg["device"]
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(want)


def setup_device(cfg: dict[str, Any]) -> torch.device:
    """The training device, with its per-process settings applied before anything is allocated."""
    device = pick_device(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg["cudnn_benchmark"])
        if cfg["gpu_memory_fraction"]:
            torch.cuda.set_per_process_memory_fraction(float(cfg["gpu_memory_fraction"]))
    return device


def load_data(data_dir: str, name: str) -> torch.Tensor:
    tensor: torch.Tensor = torch.load(os.path.join(data_dir, name), weights_only=True, mmap=True)
    return tensor


def load_dataset(data_dir: str, cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The three public tensors, opened and checked BEFORE any candidate code runs.

    A dataset this sandbox cannot read is the sandbox's fault: failing here, before the marker,
    keeps it from being charged to whichever candidate happened to be next. Memory-mapped, so
    opening is cheap; the pages are read when training touches them.
    """
    data = {}
    for name in ("train_images", "train_labels", "val_images"):
        try:  # (N, C, H, W) uint8, (N,) int64, (N_val, C, H, W) uint8
            data[name] = load_data(data_dir, f"{name}.pt")
        except Exception as exc:
            raise OSError(f"the dataset's {name}.pt cannot be read: {one_line(exc)}") from None
    shape = tuple(cfg["input_shape"])
    for name in ("train_images", "val_images"):
        tensor = data[name]
        if tensor.dtype != torch.uint8 or tuple(tensor.shape[1:]) != shape:
            got = f"{tensor.dtype} {tuple(tensor.shape)}"
            raise ValueError(f"{name}.pt is {got}, not uint8 (N, {', '.join(map(str, shape))})")
    if len(data["train_labels"]) != len(data["train_images"]):
        raise ValueError("train_labels.pt and train_images.pt differ in length")
    # touch the first and last image: a truncated file fails here, not in the middle of training
    for name in ("train_images", "val_images"):
        tensor = data[name]
        if len(tensor):
            int(tensor[0].sum()) + int(tensor[-1].sum())
    return data


def resolve_autocast(mode: str, device: torch.device) -> str:
    """ "auto": bf16 where it is fast, else fp32 ("off"); other modes are taken as asked.

    GPUs: bf16 where supported (Ampere and newer), else fp16 with loss scaling. CPUs: bf16 only
    with native bf16 instructions (AMX or AVX512-BF16), where oneDNN runs convolutions about 2x
    faster than fp32 (2-core Xeon with AMX, 20k 32x32 images, small CNN: 10-14 s fp32 vs 6.1-6.5
    s bf16, validation accuracy equal within 0.3 points over 2 seeds); without them bf16 is
    emulated and slower than fp32.
    """
    if mode != "auto":
        return mode
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        with _open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return "off"
    return "bf16" if "amx_bf16" in flags or "avx512_bf16" in flags else "off"


def autocast_or_off(
    net: nn.Module, x: torch.Tensor, cfg: dict[str, Any], device: torch.device
) -> str:
    """The chosen mixed precision, or "off" when the net has an op without a bf16/fp16 kernel.

    A precision the user never asked for must not fail a correct net (like channels_last above).
    """
    try:
        with torch.no_grad(), autocast_context(cfg, device):
            net(x.to(memory_format=torch.channels_last) if cfg["channels_last"] else x)
        return str(cfg["autocast"])
    except RuntimeError as exc:
        if "BFloat16" not in str(exc) and "Half" not in str(exc):
            raise classify_exception(exc, "forward") from None
        log(f"autocast off for this candidate: {one_line(exc)}")
        return "off"


def autocast_context(cfg: dict[str, Any], device: torch.device) -> Any:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg["autocast"])
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def train(
    net: nn.Module,
    cfg: dict[str, Any],
    data: dict[str, torch.Tensor],
    device: torch.device,
    stats: dict[str, Any],
) -> None:
    images, labels = data["train_images"], data["train_labels"]  # (N, C, H, W) uint8, (N,) int64
    if cfg["train_limit"]:
        images, labels = images[: cfg["train_limit"]], labels[: cfg["train_limit"]]
    images, labels = images.to(device), labels.to(device)
    n, bs, epochs = len(images), cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = math.ceil(n / bs)
    total_steps = steps_per_epoch * epochs
    stats.update(n_train=n, steps=total_steps)

    normalize = Normalizer(cfg, device)
    gen = torch.Generator(device=device).manual_seed(cfg["seed"])
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
        nesterov=cfg["nesterov"],
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg["autocast"] == "fp16")
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    finite = torch.ones((), device=device, dtype=torch.bool)
    step = 0
    net.train()
    for epoch in range(epochs):
        epoch_lr = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = torch.randperm(n, generator=gen, device=device)
        for start in range(0, n, bs):
            if n - start < 2:  # a batch of one breaks BatchNorm in training mode: skip it
                break
            if cfg["lr_schedule"] == "step_cosine":
                lr = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            else:
                lr = epoch_lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[start : start + bs]
            x = normalize(augment(images[idx], cfg["flip"], cfg["crop_pad"], gen))
            y = labels[idx]
            with autocast_context(cfg, device):
                out = net(x)
                loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
            step += 1
            detached = loss.detach().float()
            finite &= torch.isfinite(detached)
            loss_sum += detached * len(idx)
            if epoch == epochs - 1:
                correct += (out.detach().argmax(1) == y).sum()
            checkpoint = step % cfg["nan_check_every"] == 0 or step == total_steps
            if checkpoint and not bool(finite):
                raise CandidateFailure(
                    "nan",
                    f"training loss became NaN/inf by step {step} of {total_steps} (lr {lr:g})",
                )
    stats["train_loss"] = float(loss_sum) / (n * epochs)
    stats["train_accuracy"] = float(correct) / n


def predict(
    net: nn.Module, cfg: dict[str, Any], images: torch.Tensor, device: torch.device
) -> list[int]:
    # images: (N_val, C, H, W) uint8
    normalize = Normalizer(cfg, device)
    net.eval()
    preds = []
    with torch.no_grad(), autocast_context(cfg, device):
        for start in range(0, len(images), cfg["eval_batch_size"]):
            x = normalize(images[start : start + cfg["eval_batch_size"]].to(device))
            preds.append(net(x).argmax(1).cpu())
    return [int(p) for p in torch.cat(preds)] if preds else []


def check_candidate(
    job_dir: str, cfg: dict[str, Any], report: dict[str, Any]
) -> tuple[nn.Module, torch.Tensor]:
    """Import the candidate, build its Net, check one forward pass: the net and its dummy input."""
    timings = report["timings"]
    # Everything before this line is ours; from the marker on, whatever fails is the candidate's.
    print(CANDIDATE_MARKER, file=sys.stderr, flush=True)
    report["phase"] = "import"
    t = time.perf_counter()
    module = load_candidate(os.path.join(job_dir, "candidate.py"))
    report["phase"] = "init"
    net = build_net(module, cfg["num_classes"])
    timings["build_s"] = time.perf_counter() - t

    report["phase"] = "forward"
    t = time.perf_counter()
    c, h, w = cfg["input_shape"]
    dummy = torch.randn(2, c, h, w)  # (B, C, H, W); two images so that BatchNorm can work
    check_output_shape(net, dummy, cfg["num_classes"], report)
    timings["forward_s"] = time.perf_counter() - t
    report["params"] = count_params(net, report)  # after the forward: lazy modules have sizes
    return net, dummy


def unused_lazy(net: nn.Module) -> list[str]:
    """The lazy modules a forward pass left uninitialised (it never called them), by name."""
    from torch.nn.parameter import is_lazy

    names = {
        name.rpartition(".")[0] or name
        for name, value in [*net.named_parameters(), *net.named_buffers()]
        if is_lazy(value)
    }
    return sorted(names)


def count_params(net: nn.Module, report: dict[str, Any]) -> int:
    """The parameters, counted after the forward pass that gave the lazy modules their sizes.

    A lazy module that pass never called still holds uninitialised parameters, and every later
    step would raise on them (numel, channels_last, the optimiser, state_dict): the evaluator's
    own step, charged to the candidate. So each is given an empty tensor (0 values: nothing to
    train, count or save), and the module is named in `report["unused_lazy"]`.
    """
    unused = unused_lazy(net)
    if unused:
        from torch.nn.parameter import is_lazy

        for value in [*net.parameters(), *net.buffers()]:
            if is_lazy(value):
                value.materialize((0,))
        report["unused_lazy"] = unused[:MAX_NAMES]
        log(f"lazy modules the forward pass never called (left empty): {', '.join(unused)}")
    return sum(p.numel() for p in net.parameters())


def probe_dry_run(
    net: nn.Module, x: torch.Tensor, num_classes: int, report: dict[str, Any]
) -> None:
    """What a passed dry run adds: the architecture fingerprint, then the dead layers.

    Both are our questions about a net that already passed, so a probe that raises (an op with
    no backward, say) only leaves its field out: training will tell the candidate's error itself.
    """
    t = time.perf_counter()
    try:
        report["fingerprint"], report["fingerprint_steps"] = architecture_fingerprint(net, x)
    except BaseException as exc:
        log(f"no architecture fingerprint: {one_line(exc)}")
    report["timings"]["fingerprint_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        dead, values = dead_layers(net, x, num_classes)
        report["dead_layers"], report["dead_params"] = dead[:MAX_NAMES], values
    except BaseException as exc:
        log(f"dead layers not checked: {one_line(exc)}")
    report["timings"]["dead_layers_s"] = time.perf_counter() - t


def dead_layers(net: nn.Module, x: torch.Tensor, num_classes: int) -> tuple[list[str], int]:
    """The modules holding parameters that get no gradient from a forward and backward pass on
    `x` (a loss on random labels), in the net's order, and how many values they hold.

    A parameter whose grad stays None is not on any path from the input to the loss: a layer the
    forward never calls (the skeleton's `features` skipped by a `x.view(-1, 28 * 28)`), or one
    whose output is thrown away. Frozen parameters (requires_grad False) are not asked about.
    The pass is in eval mode, like the rest of the dry run, which never runs the net in training
    mode (a forward may behave otherwise there, even loop forever): BatchNorm's weights still get
    their gradient; a layer a forward only calls `if self.training` counts as dead.
    """
    params = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    for _, p in params:
        p.grad = None
    net.eval()
    with torch.enable_grad():
        out = net(x)
        labels = torch.randint(
            0, num_classes, (x.shape[0],), generator=torch.Generator().manual_seed(0)
        )
        F.cross_entropy(out.float(), labels).backward()  # type: ignore[no-untyped-call]
    modules: dict[str, int] = {}
    for name, p in params:
        if p.grad is None:
            module = name.rpartition(".")[0] or name
            modules[module] = modules.get(module, 0) + p.numel()
    for _, p in params:
        p.grad = None
    return list(modules), sum(modules.values())


# Tensor ops that only lay the same values out anew: one name, so that `x.view(x.size(0), -1)`,
# `x.flatten(1)` and `torch.flatten(x, 1)` are one step (their output shape still counts)
_RELAYOUTS = {"view", "reshape", "flatten", "contiguous", "view_as", "reshape_as"}


def architecture_fingerprint(net: nn.Module, x: torch.Tensor) -> tuple[str, int]:
    """A sha256 of what one eval-mode forward pass on `x` computes, and how many steps it has.

    The steps, in call order: every leaf module the pass calls, as its class, its hyper-parameters
    (`extra_repr`: channels, kernel, stride, p, ...) and its output shape; and every torch
    function or tensor method called outside a leaf module (Net.forward's own `F.relu`, `+`,
    `torch.cat`, a flatten), as its name and output shape. Names of attributes, comments, code
    that never runs and module-level tails do not enter it; weights and seeds do not either. A
    lazy module counts as the module it became (LazyLinear(128) after a 6272-wide input is
    Linear(6272, 128)). Functional and module forms of one op (F.relu, nn.ReLU) stay different.

    Cost: one more forward pass with a hook per module call and a torch-function mode (a Python
    call per op), streamed into the hash: nothing kept but the digest.
    """
    from torch.nn.modules import module as torch_module
    from torch.overrides import TorchFunctionMode

    digest = hashlib.sha256()
    steps = [0]
    inside = [0]  # leaf module calls under way (their own ops are theirs, not Net.forward's)

    def add(entry: str) -> None:
        digest.update(entry.encode("utf-8", "replace") + b"\n")
        steps[0] += 1

    def is_leaf(module: nn.Module) -> bool:
        return module is not net and next(iter(module.children()), None) is None

    def started(module: nn.Module, args: Any) -> None:
        if is_leaf(module):
            inside[0] += 1

    def finished(module: nn.Module, args: Any, output: Any) -> None:
        if is_leaf(module):
            inside[0] -= 1
            if inside[0] == 0:
                add(f"{type(module).__name__}({module.extra_repr()}) {_first_shape(output)}")

    class Ops(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            out = func(*args, **(kwargs or {}))
            shape = _first_shape(out)
            if inside[0] == 0 and shape is not None:
                name = str(getattr(func, "__name__", func)).strip("_")
                add(f"{'relayout' if name in _RELAYOUTS else name} {shape}")
            return out

    net.eval()
    handles = [
        torch_module.register_module_forward_pre_hook(started),
        torch_module.register_module_forward_hook(finished),
    ]
    try:
        with torch.no_grad(), Ops():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return digest.hexdigest(), steps[0]


def run(job_dir: str, data_dir: str, out_dir: str, report: dict[str, Any]) -> list[int] | None:
    """Train and predict: the validation predictions; None for a dry run, which stops earlier."""
    with _open(os.path.join(job_dir, "config.json"), encoding="utf-8") as f:
        cfg = {**DEFAULTS, **json.load(f)}
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    if cfg["mode"] == "dry_run":  # on the CPU, no device set-up, no data: it must cost < 1 s
        torch.manual_seed(cfg["seed"])
        net, dummy = check_candidate(job_dir, cfg, report)
        probe_dry_run(net, dummy, cfg["num_classes"], report)
        report["message"] = f"dry run ok: output (2, {cfg['num_classes']})"
        return None
    device = setup_device(cfg)
    report["device"] = str(device)
    chosen_for_us = cfg["autocast"] == "auto"
    cfg["autocast"] = report["autocast"] = resolve_autocast(cfg["autocast"], device)
    torch.manual_seed(cfg["seed"])
    timings = report["timings"]
    data = load_dataset(data_dir, cfg)  # before the marker: unreadable data is our fault

    net, dummy = check_candidate(job_dir, cfg, report)
    try:
        report["flops"] = count_flops(net, dummy)
    except BaseException as exc:  # some exotic ops have no FLOP formula: not the candidate's fault
        log(f"FLOP count unavailable: {one_line(exc)}")
    cfg["channels_last"] = cfg["channels_last"] and channels_last_works(net, dummy)
    report["channels_last"] = cfg["channels_last"]
    if chosen_for_us and cfg["autocast"] != "off" and device.type == "cpu":
        cfg["autocast"] = report["autocast"] = autocast_or_off(net, dummy, cfg, device)
    memory_format = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    net = net.to(device).to(memory_format=memory_format)

    report["phase"] = "train"
    t = time.perf_counter()
    try:
        train(net, cfg, data, device, report)
        if device.type == "cuda":
            torch.cuda.synchronize()
    except CandidateFailure:
        raise
    except BaseException as exc:
        raise classify_exception(exc, "train") from None
    timings["train_s"] = time.perf_counter() - t

    report["phase"] = "predict"
    t = time.perf_counter()
    try:
        predictions = predict(net, cfg, data["val_images"], device)
    except BaseException as exc:
        raise classify_exception(exc, "predict") from None
    timings["predict_s"] = time.perf_counter() - t
    if device.type == "cuda":
        report["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    report["peak_memory_mb"] = peak_memory_mb(device)
    try:
        report["latency_ms"] = latency_ms(net, cfg, dummy[:1], device)
    except BaseException as exc:  # a forward that only fails at batch 1: no latency, no failure
        log(f"latency not measured: {one_line(exc)}")
    if cfg["save_weights"]:
        save_weights(net, os.path.join(out_dir, "weights.pt"), cfg["max_weights_mb"])
    if cfg["export"]:
        t = time.perf_counter()
        export_net(net, dummy, os.path.join(out_dir, "net.pt2"), cfg["max_weights_mb"])
        timings["export_s"] = time.perf_counter() - t
    return predictions


def peak_memory_mb(device: torch.device) -> float:
    """GPU: the most memory torch allocated on it; CPU: this process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def latency_ms(net: nn.Module, cfg: dict[str, Any], x: torch.Tensor, device: torch.device) -> float:
    """Median time of one batch-1 forward pass in eval mode on the training device, in ms.

    What a deployed classifier pays per single request. Two untimed passes first (allocator,
    cuDNN autotuning); each timed pass is synchronised, so GPU time is counted, not queued.
    """
    memory_format = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    x = x.to(device).contiguous(memory_format=memory_format)  # (1, C, H, W)
    net.eval()
    times = []
    with torch.no_grad(), autocast_context(cfg, device):
        for i in range(2 + cfg["latency_runs"]):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t)
    times.sort()
    middle = len(times) // 2
    median = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
    return median * 1000


def save_weights(net: nn.Module, path: str, max_mb: float) -> None:
    """The trained state_dict, on the CPU in the default layout, if it is at most `max_mb`."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    size = sum(v.numel() * v.element_size() for v in state.values())
    if size > max_mb * 2**20:
        log(f"weights not saved: {size / 2**20:.0f} MiB is over the {max_mb} MiB bound")
        return
    try:
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)
    except OSError as exc:  # e.g. the out dir's size bound: the score still counts
        log(f"weights not saved: {one_line(exc)}")


def export_net(net: nn.Module, example: torch.Tensor, path: str, max_mb: float) -> None:
    """The trained net as an ExportedProgram (ATen graph + weights, none of the candidate's
    Python), batch size left free, on the CPU in fp32; a net that cannot be exported has no file,
    and its figures stay self-reported (the host says so)."""
    try:
        from torch.export import Dim, export, save

        net = net.to("cpu").to(memory_format=torch.contiguous_format).eval()
        with torch.no_grad():
            program = export(net, (example.to("cpu"),), dynamic_shapes=({0: Dim.DYNAMIC},))
        partial = path + ".partial.pt2"  # torch.export.save wants the .pt2 suffix
        save(program, partial)
        if os.path.getsize(partial) > max_mb * 2**20:
            os.remove(partial)
            log(f"net not exported: over the {max_mb} MiB bound")
            return
        os.replace(partial, path)
    except BaseException as exc:  # an op torch.export cannot trace: not the candidate's failure
        log(f"net not exported: {one_line(exc)}")


def write_json(path: str, payload: Any) -> None:
    tmp = path + ".tmp"
    with _open(tmp, "w", encoding="utf-8") as f:
        f.write(_dumps(payload))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="directory with config.json and candidate.py")
    parser.add_argument("--data", required=True, help="directory with the prepared public tensors")
    parser.add_argument(
        "--out", required=True, help="writable directory for report and predictions"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    report: dict[str, Any] = {
        "status": "error",
        "kind": "runtime",
        "message": "",
        "traceback": "",
        "phase": "setup",
        "params": None,
        "flops": None,
        "timings": {},
        "torch": torch.__version__,
    }
    code = 1
    try:
        predictions = run(args.job, args.data, args.out, report)
        if predictions is not None:
            write_json(os.path.join(args.out, "predictions.json"), predictions)
            report["message"] = f"trained {report.get('steps')} steps"
        report.update(status="ok", kind="ok")
        code = 0
    except CandidateFailure as failure:
        report.update(kind=failure.kind, message=failure.message, traceback=failure.tb)
    except BaseException as exc:  # the runner's own code failed around the candidate's
        other = classify_exception(exc, report["phase"])
        report.update(kind=other.kind, message=other.message, traceback=other.tb)
    report["timings"]["total_s"] = time.perf_counter() - started
    write_json(os.path.join(args.out, "report.json"), report)
    log(f"{report['kind']}: {report['message']}")
    sys.stdout.flush()
    # os._exit: a candidate's stray non-daemon threads or atexit hooks must not keep us alive.
    os._exit(code)


if __name__ == "__main__":
    main()
