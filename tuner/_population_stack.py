"""K models of one architecture as stacked tensors: one batched computation for all of them.

Stackable: an ``nn.Sequential`` (nested ones are flattened) of ``nn.Flatten``, ``nn.Linear``
and parameter-free elementwise activations, the shape of the built-in ``mlp`` task. Every
member's Linear runs inside one ``baddbmm``, which calls, per member, the same GEMM with
the same operand layouts as ``F.linear`` does in a single-trial run (and the backward the
same GEMMs as ``addmm``'s backward), so on CPU with one thread the numbers match a
single-trial run bit for bit. Anything else (BatchNorm's running statistics, Dropout's random
draws, convolutions, a custom ``forward``) is not stackable: :func:`stack_plan` says None and
the caller trains those trials one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tuner._train import EVAL_CHUNK

# Elementwise, without parameters, buffers or randomness: they apply to a stack as they are.
_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Identity,
)

Step = nn.Module  # a plan step: an nn.Flatten, an nn.Linear (its position) or an activation


def _leaves(model: nn.Module) -> list[nn.Module] | None:
    if type(model) is not nn.Sequential:  # a subclass may override forward
        return None
    out: list[nn.Module] = []
    for child in model:
        if type(child) is nn.Sequential:
            inner = _leaves(child)
            if inner is None:
                return None
            out += inner
        else:
            out.append(child)
    return out


def stack_plan(model: nn.Module) -> list[nn.Module] | None:
    """The modules ``model`` runs, in order, when it can be stacked; else None."""
    leaves = _leaves(model)
    if not leaves or not any(type(m) is nn.Linear for m in leaves):
        return None
    for module in leaves:
        if type(module) is nn.Flatten:
            if module.start_dim != 1 or module.end_dim != -1:
                return None
        elif type(module) is not nn.Linear and not (
            type(module) in _ELEMENTWISE and not list(module.parameters())
        ):
            return None
    return leaves


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


class _StackedLinear(torch.autograd.Function):
    """``x @ w^T + b`` per member: x [K, B, in], w [K, out, in], b [K, out] or None.

    Written out (not autograd through ``baddbmm`` on a transposed weight) so each gradient
    comes out in its parameter's own layout by the same GEMM as ``addmm``'s backward, and
    autocast's dtype is applied here explicitly.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            xc, wc = x.to(dtype), w.to(dtype)
            ctx.save_for_backward(xc, wc)
            ctx.has_bias, ctx.w_dtype = b is not None, w.dtype
            if b is None:
                return torch.bmm(xc, wc.transpose(1, 2))
            return torch.baddbmm(b.to(dtype).unsqueeze(1), xc, wc.transpose(1, 2))

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        xc, wc = ctx.saved_tensors
        grad = grad.to(wc.dtype)
        grad_x = torch.bmm(grad, wc) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), xc).to(ctx.w_dtype)
        grad_b = grad.sum(1).to(ctx.w_dtype) if ctx.has_bias else None
        return grad_x, grad_w, grad_b


@dataclass
class _Layer:
    module: nn.Module  # the first member's module: its type and settings (activations)
    weight: int = -1  # index into StackedMLP.params for a Linear; -1 otherwise
    bias: int = -1


class StackedMLP:
    """The parameters of K members as leaves of shape [K, *shape]; members can leave."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        plans = [stack_plan(m) for m in models]
        first = plans[0]
        if first is None or any(p is None or len(p) != len(first) for p in plans):
            raise ValueError("models that cannot be stacked")
        self.layers: list[_Layer] = []
        columns: list[list[torch.Tensor]] = []
        for position, module in enumerate(first):
            layer = _Layer(module)
            if type(module) is nn.Linear:
                linears: list[Any] = [plan[position] for plan in plans if plan is not None]
                layer.weight = len(columns)
                columns.append([m.weight for m in linears])
                if module.bias is not None:
                    layer.bias = len(columns)
                    columns.append([m.bias for m in linears])
            self.layers.append(layer)
        with torch.no_grad():
            self.params = [torch.stack(c).requires_grad_() for c in columns]

    @property
    def size(self) -> int:
        return len(self.params[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, classes] for inputs [K, B, *features]: each member its own batch."""
        for layer in self.layers:
            module = layer.module
            if type(module) is nn.Flatten:
                x = x.reshape(x.shape[0], x.shape[1], -1)
            elif layer.weight >= 0:
                bias = self.params[layer.bias] if layer.bias >= 0 else None
                x = _StackedLinear.apply(x, self.params[layer.weight], bias)
            else:
                x = module(x)
        return x

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member mean cross-entropy and accuracy on shared data, as ``evaluate`` does."""
        k, n = self.size, len(x)
        loss = torch.zeros(k, device=x.device)
        correct = torch.zeros(k, device=x.device)
        for start in range(0, n, EVAL_CHUNK):
            chunk, target = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            logits = self.forward(chunk.unsqueeze(0).expand(k, *chunk.shape))
            for member in range(k):  # the single-trial reductions, member by member
                loss[member] += F.cross_entropy(logits[member], target, reduction="sum")
                correct[member] += (logits[member].argmax(1) == target).sum()
        return loss / n, correct / n

    def keep(self, members: torch.Tensor) -> None:
        """Only these members (indices into the current stack) stay."""
        with torch.no_grad():
            self.params = [p.index_select(0, members).requires_grad_() for p in self.params]

    def member_views(self) -> list[list[torch.Tensor]]:
        """Per member, its parameters as views (for per-member optimizer updates)."""
        return [[p[i] for p in self.params] for i in range(self.size)]
