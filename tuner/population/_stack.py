"""K models of one architecture as stacked tensors: one batched computation for all of them.

Stackable: an ``nn.Sequential`` (nested ones are flattened) of ``nn.Flatten``, ``nn.Linear``
and parameter-free elementwise activations, the shape of the built-in ``mlp`` task. Every
member's Linear runs inside one ``baddbmm``, which calls, per member, the same GEMM with
the same operand layouts as ``F.linear`` in a single-trial run; the backward pass is written
out with the GEMMs, reductions and kernels autograd would call for ``addmm``, ReLU and the
cross-entropy, so on CPU with one thread a member's numbers match its single-trial run bit
for bit. Written out, a step is a few dozen ops for the whole population, gradients land in
buffers allocated once. Anything else (BatchNorm's running statistics, Dropout's random
draws, convolutions, a custom ``forward``) is not stackable: :func:`stack_plan` says None and
the caller trains those trials one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from tuner.training import EVAL_CHUNK

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


def apply_layer(
    module: nn.Module,
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """One planned layer on a stack's activations ``x`` [K, B, ...]: a Linear's ``weight``
    [K, out, in] and ``bias`` [K, out] (in the matmuls' dtype) as one ``bmm``/``baddbmm``,
    a Flatten as a reshape, an activation (no weight) as it is."""
    if type(module) is nn.Flatten:
        return x.reshape(x.shape[0], x.shape[1], -1)
    if weight is None:
        return module(x)
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


@dataclass
class _Layer:
    module: nn.Module  # the first member's module: its type and settings (activations)
    weight: int = -1  # index into StackedMLP.params for a Linear; -1 otherwise
    bias: int = -1


class StackedMLP:
    """The parameters of K members as tensors of shape [K, *shape]; members can leave.

    ``dtype`` is the matmuls' (bf16 in fast mode); parameters and gradients stay in theirs.
    """

    def __init__(self, models: Sequence[nn.Module], dtype: torch.dtype | None = None) -> None:
        plans = [stack_plan(m) for m in models]
        first = plans[0]
        if first is None or any(p is None or len(p) != len(first) for p in plans):
            raise ValueError("models that cannot be stacked")
        self.layers: list[_Layer] = []
        columns: list[list[torch.Tensor]] = []
        for position, module in enumerate(first):
            layer = _Layer(module)
            if isinstance(module, nn.Linear):
                linears = [p[position] for p in plans if p is not None]
                layer.weight = len(columns)
                columns.append([m.weight for m in linears])  # type: ignore[misc]
                if module.bias is not None:
                    layer.bias = len(columns)
                    columns.append([m.bias for m in linears])  # type: ignore[misc]
            self.layers.append(layer)
        with torch.no_grad():
            self.params = [torch.stack(c) for c in columns]
        self.grads = [torch.empty_like(p) for p in self.params]
        self.dtype = dtype or self.params[0].dtype
        # Below the first Linear nothing needs a gradient (the inputs have none).
        self._lowest = next(i for i, layer in enumerate(self.layers) if layer.weight >= 0)

    @property
    def size(self) -> int:
        return len(self.params[0])

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == self.dtype else t.to(self.dtype)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, classes] for inputs [K, B, *features]: each member its own batch."""
        x = self._cast(x)
        for layer in self.layers:
            x = self._apply(layer, x)
        return x

    def _apply(
        self, layer: _Layer, x: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        if layer.weight >= 0 and weight is None:
            weight = self._cast(self.params[layer.weight])
        bias = self._cast(self.params[layer.bias]) if layer.bias >= 0 else None
        return apply_layer(layer.module, x, weight, bias)

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member mean cross-entropy [K] of a batch; its gradients into ``self.grads``.

        The ops autograd runs for ``F.cross_entropy(model(x), y).backward()``, per member.
        """
        saved: list[tuple[torch.Tensor, ...]] = []
        h = self._cast(x)
        with torch.no_grad():
            for layer in self.layers:
                if layer.weight >= 0:  # its input, and its weight as the matmul takes it
                    weight = self._cast(self.params[layer.weight])
                    saved.append((h, weight))
                    h = self._apply(layer, h, weight)
                elif type(layer.module) is nn.Flatten:
                    saved.append((h,))
                    h = self._apply(layer, h)
                elif type(layer.module) is nn.ReLU:
                    h = torch.relu(h)
                    saved.append((h,))
                else:  # other activations: their own backward, through a one-node graph
                    with torch.enable_grad():
                        leaf = h.detach().requires_grad_()
                        # an in-place module works on a copy, as on a Linear's output
                        inplace = getattr(layer.module, "inplace", False)
                        h = layer.module(leaf.clone() if inplace else leaf)
                    saved.append((leaf, h))
                    h = h.detach()
            logp = torch.log_softmax(h.float(), -1)
            target = y.view(*logp.shape[:2], 1)
            losses = logp.gather(-1, target).squeeze(-1).neg_().mean(1)
            # d(sum of the members' mean losses)/d log-probs: -1/B at each row's target
            grad = torch.zeros_like(logp).scatter_(-1, target, -1.0 / logp.shape[1])
            grad = torch._log_softmax_backward_data(grad, logp, -1, torch.float32)
            for index in reversed(range(self._lowest, len(self.layers))):
                grad = self._backward(index, grad, saved[index])
        return losses

    def _backward(
        self, index: int, grad: torch.Tensor, saved: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        layer = self.layers[index]
        if type(layer.module) is nn.Flatten:
            return grad.reshape(saved[0].shape)
        if layer.weight < 0:
            if len(saved) == 1:  # ReLU, from its output, as autograd does
                return torch.ops.aten.threshold_backward(grad, saved[0], 0)
            with torch.enable_grad():
                (out,) = torch.autograd.grad(saved[1], saved[0], grad)
            return out
        inputs, weight = saved
        grad = self._cast(grad)
        grad_w = self.grads[layer.weight]
        grad_b = self.grads[layer.bias] if layer.bias >= 0 else None
        if grad.dtype == grad_w.dtype:  # straight into the buffers
            torch.bmm(grad.transpose(1, 2), inputs, out=grad_w)
            if grad_b is not None:
                torch.sum(grad, 1, out=grad_b)
        else:  # low-precision matmuls: gradients cast back to the parameters' dtype
            grad_w.copy_(torch.bmm(grad.transpose(1, 2), inputs))
            if grad_b is not None:
                grad_b.copy_(grad.sum(1))
        if index == self._lowest:
            return grad  # nothing below needs it
        return torch.bmm(grad, weight)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member mean cross-entropy and accuracy on shared data: one batched pass per
        chunk for the whole population (each chunk cast once and shared, not copied K times).
        """
        k, n = self.size, len(x)
        loss = torch.zeros(k, device=x.device)
        correct = torch.zeros(k, device=x.device)
        for start in range(0, n, EVAL_CHUNK):
            rows = min(EVAL_CHUNK, n - start)
            chunk = self._cast(x.narrow(0, start, rows))
            target = y.narrow(0, start, rows).expand(k, rows)
            logits = self.forward(chunk.expand(k, *chunk.shape)).float()  # [K, rows, classes]
            per_row = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            loss += per_row.view(k, rows).sum(1)
            correct += (logits.argmax(2) == target).sum(1)
        return loss / n, correct / n

    def keep(self, members: torch.Tensor) -> None:
        """Only these members (indices into the current stack) stay."""
        self.params = [p.index_select(0, members) for p in self.params]
        self.grads = [torch.empty_like(p) for p in self.params]
