"""The stacked step, optimizer and evaluation on fake CUDA tensors: every op they run on a
CUDA device keeps its tensors (and any generator) on that one device, checked on a CPU
host before the code first meets a GPU.

``FakeTensorMode`` gives tensors a device and shape without memory or kernels, so a
``cuda:0`` tensor exists here; a dispatch mode underneath records every op and the devices
of its tensor arguments and of its generator.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tuner.population._optim import StackedOptimizer
from tuner.population._stack import StackedMLP

K, BATCH, FEATURES, CLASSES = 4, 16, 64, 10


class DeviceLog(TorchDispatchMode):
    """Every op's name, the devices of its tensor arguments (0-dim CPU scalars aside, as torch
    allows them anywhere) and ``generator``, and the devices of its results."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, set[str], set[str]]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        inputs: set[str] = set()
        for value in tree_flatten((args, kwargs))[0]:
            if isinstance(value, torch.Tensor):
                if not (value.device.type == "cpu" and value.dim() == 0):
                    inputs.add(str(value.device))
            elif isinstance(value, torch.Generator):
                inputs.add(str(value.device))
        outputs: set[str] = set()
        self.ops.append((str(func), inputs, outputs))
        out = func(*args, **kwargs)
        outputs.update(str(v.device) for v in tree_flatten(out)[0] if isinstance(v, torch.Tensor))
        return out

    def mixed(self) -> list[str]:
        """Ops given tensors (or a generator) on more than one device."""
        return [op for op, inputs, _ in self.ops if len(inputs) > 1]

    def transfers(self) -> list[str]:
        """Ops whose results sit on another device than their inputs (host <-> device)."""
        return [op for op, inputs, outputs in self.ops if inputs and outputs - inputs]


def _linear(fake: FakeTensorMode, n_in: int, n_out: int) -> nn.Linear:
    """A Linear whose parameters live on the fake GPU (uninitialized: fake tensors hold no
    values, and CUDA's generator is not there to draw them)."""
    linear = nn.Linear(n_in, n_out, device="meta")
    with fake:
        linear.weight = nn.Parameter(torch.empty(n_out, n_in, device="cuda"))
        linear.bias = nn.Parameter(torch.empty(n_out, device="cuda"))
    return linear


def _members(fake: FakeTensorMode, activation: type[nn.Module]) -> list[nn.Module]:
    return [
        nn.Sequential(
            nn.Flatten(),
            _linear(fake, FEATURES, 32),
            activation(),
            _linear(fake, 32, CLASSES),
        )
        for _ in range(K)
    ]


@pytest.mark.parametrize(
    ("optimizer", "fast"),
    [
        ("sgd", False),
        ("adam", False),
        ("adamw", False),
        ("sgd", True),
        ("adam", True),
        ("adamw", True),
    ],
)
def test_a_stacked_step_and_evaluation_stay_on_the_cuda_device(optimizer: str, fast: bool) -> None:
    """The written-out step (ReLU: the built-in mlp's) in fp32, with every optimizer in both
    modes. What a CPU-only build of torch cannot fake on CUDA is left to the GPU check:
    other activations (they go through autograd) and bf16 casts."""
    log, fake = DeviceLog(), FakeTensorMode()
    members = _members(fake, nn.ReLU)
    with fake:  # set-up (binding uploads each member's lr and L2 lambda once)
        stack = StackedMLP(members)
        opt = StackedOptimizer(
            optimizer, lrs=[0.1] * K, weight_decays=[1e-4] * K, momentum=0.9, fast=fast
        )
        opt.bind(stack.params, stack.grads)
        x = torch.empty(K, BATCH, FEATURES, device="cuda")
        y = torch.zeros(K * BATCH, dtype=torch.long, device="cuda")
    with fake, log:  # steps and evaluation: nothing crosses devices
        losses = stack.loss_and_grads(x, y)
        opt.step()
        opt.step()
        val_x = torch.empty(40, FEATURES, device="cuda")
        val_loss, val_accuracy = stack.evaluate(
            val_x, torch.zeros(40, dtype=torch.long, device="cuda")
        )
        kept = torch.arange(0, K, 2, device="cuda")
        stack.keep(kept)  # members leave at an epoch's end
    for out in (losses, val_loss, val_accuracy, *stack.params, *opt.state[0]):
        assert out.device == torch.device("cuda:0")
    assert [p.shape[0] for p in stack.params] == [2] * len(stack.params)
    assert not log.mixed() and not log.transfers(), (log.mixed(), log.transfers())
    # the log saw the step itself, not only the set-up
    names = {op for op, _, _ in log.ops}
    assert "aten.bmm.default" in names or "aten.baddbmm.default" in names
    assert any("foreach" in op or "addcmul" in op for op in names)  # the optimizer


def test_the_log_catches_an_op_across_devices() -> None:
    """The check can fail: an op given a CUDA and a CPU tensor is logged (then refused)."""
    log = DeviceLog()
    with FakeTensorMode(), log, pytest.raises(RuntimeError, match="same device"):
        torch.empty(8, device="cuda") + torch.empty(8)
    assert log.mixed() == ["aten.add.Tensor"]
    with FakeTensorMode(), log:
        torch.empty(8, device="cuda").to("meta")
    assert log.transfers() == ["aten._to_copy.default"]
