"""The stacked step under ``torch.compile``: one graph for any population size, any activation.

:meth:`StackedMLP.loss_and_grads` writes the backward pass out by hand so that, on CPU in
exact mode, a member's numbers match its single-trial run bit for bit. A compiler fuses and
reorders that arithmetic anyway, so the compiled step drops the hand-written backward: it
compiles the stack's forward pass and loss as a function of the parameters, and autograd
(the compiled backward graph AOTAutograd made) gives the gradients. Every activation the
stack accepts is then a traced op, not a graph break.

The population size K and the batch are marked dynamic from the first call (the feature
sizes stay static), so members leaving (K shrinking) and a short last batch reuse the graph;
only a size of 1 is specialized (PyTorch's 0/1 specialization), which makes at most one
more graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from tuner.population._stack import StackedMLP, apply_layer

#: The backend ``torch.compile`` uses (tests swap in a counting one).
BACKEND: str | Callable[..., object] = "inductor"

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _losses(
    modules: tuple[nn.Module, ...],
    linear: tuple[tuple[int, int], ...],
    dtype: torch.dtype,
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Per-member mean cross-entropy [K] of a batch: the stack's forward pass, with autograd."""
    h = x.to(dtype)
    for module, (w, b) in zip(modules, linear, strict=True):
        weight = params[w].to(dtype) if w >= 0 else None
        bias = params[b].to(dtype) if b >= 0 else None
        h = apply_layer(module, h, weight, bias)
    k, batch = h.shape[0], h.shape[1]
    per_row = F.cross_entropy(h.float().flatten(0, 1), y, reduction="none")
    return per_row.view(k, batch).mean(1)


def compiled_step(stack: StackedMLP) -> Step:
    """A step like ``stack.loss_and_grads`` (losses back, gradients into ``stack.grads``),
    compiled. It reads ``stack.params`` at each call, so it follows members leaving."""
    modules = tuple(layer.module for layer in stack.layers)
    linear = tuple((layer.weight, layer.bias) for layer in stack.layers)
    losses = torch.compile(_losses, backend=BACKEND)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Leaves that share the parameters' storage: the optimizer's in-place updates show.
        params = [p.detach().requires_grad_() for p in stack.params]
        for t in (*params, x, y):  # K (and the batch): symbols, not constants
            torch._dynamo.maybe_mark_dynamic(t, 0)
        torch._dynamo.maybe_mark_dynamic(x, 1)
        out = losses(modules, linear, stack.dtype, params, x, y)
        grads = torch.autograd.grad(out.sum(), params)
        with torch.no_grad():
            torch._foreach_copy_(stack.grads, list(grads))
        return out.detach()

    return step
