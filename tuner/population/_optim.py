"""Per-member optimizer updates over stacked parameters: each member its own lr and L2 lambda.

Exact mode replays, member by member, the op sequence of torch.optim's single-tensor SGD,
Adam and AdamW (what ``make_optimizer`` gets on CPU) on that member's slices, through
``torch._foreach_*`` ops whose CPU path calls the very per-tensor kernels the optimizer calls:
each member's update is the single-trial update, bit for bit, at the price of kernels in
proportion to K. Fast mode applies the same update rule to the whole stack at once, each
member's lr and L2 lambda broadcast from a [K, 1, ...] tensor: a step launches the same
kernels for 2 members or 200 (rounded differently from torch.optim's kernels, within float
precision).
"""

from __future__ import annotations

import torch

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam/AdamW defaults, which make_optimizer keeps
ADAM_EPS = 1e-8
OPTIMIZERS = ("sgd", "adam", "adamw")

Tensors = list[torch.Tensor]


def _members(stacked: Tensors) -> list[Tensors]:
    """Per member, its slice of every stacked tensor (views)."""
    columns = [t.unbind(0) for t in stacked]
    return [list(member) for member in zip(*columns, strict=True)] if columns else []


class StackedOptimizer:
    """Updates stacked parameters from stacked gradients; ``bind`` them (again after ``keep``)."""

    def __init__(
        self,
        name: str,
        *,
        lrs: list[float],
        weight_decays: list[float],
        momentum: float,
        fast: bool,
    ) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}")
        self.name, self.momentum, self.fast = name, momentum, fast
        self.lrs, self.weight_decays = list(lrs), list(weight_decays)
        self.state: list[Tensors] = []  # sgd: [momentum buffers]; adam(w): [exp_avg, exp_avg_sq]
        self.steps = 0
        self.params: Tensors = []
        self.grads: Tensors = []
        self._views: list[
            list[Tensors]
        ] = []  # per stacked list (params, grads, *state), per member
        # fast mode, per stacked tensor: L2 lambdas, -lr, and AdamW's 1 - lr * lambda
        self._wd: Tensors = []
        self._neg_lr: Tensors = []
        self._decay: Tensors = []

    def bind(self, params: Tensors, grads: Tensors) -> None:
        """The tensors ``step`` updates and reads (the stack's, which ``keep`` replaces)."""
        self.params, self.grads = params, grads
        if not self.state:
            groups = {"sgd": 1 if self.momentum else 0, "adam": 2, "adamw": 2}[self.name]
            zeros = self.fast or self.name != "sgd"  # exact sgd clones its first gradient
            if zeros:
                self.state = [[torch.zeros_like(p) for p in params] for _ in range(groups)]
        if self.fast:  # each member's constants, shaped to broadcast over each stacked tensor
            self._wd = [self._per_member(self.weight_decays, p) for p in params]
            self._neg_lr = [self._per_member([-lr for lr in self.lrs], p) for p in params]
            decays = [1 - lr * wd for lr, wd in zip(self.lrs, self.weight_decays, strict=True)]
            self._decay = [self._per_member(decays, p) for p in params]
        else:
            self._views = [_members(t) for t in (params, grads, *self.state)]

    def keep(self, members: torch.Tensor) -> None:
        """Only these members (indices into the current stack) stay; ``bind`` follows."""
        kept = members.tolist()
        self.lrs = [self.lrs[i] for i in kept]
        self.weight_decays = [self.weight_decays[i] for i in kept]
        self.state = [[t.index_select(0, members) for t in group] for group in self.state]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        if self.fast:
            self._fast_sgd() if self.name == "sgd" else self._fast_adam()
        elif self.name == "sgd":
            self._sgd()
        else:
            self._adam()

    def _sgd(self) -> None:
        p_views, g_views = self._views[0], self._views[1]
        members = range(len(self.lrs))
        for i in members:  # grad = grad + wd * param
            if self.weight_decays[i] != 0:
                torch._foreach_add_(g_views[i], p_views[i], alpha=self.weight_decays[i])
        d_views = g_views
        if self.momentum:
            if not self.state:  # the first step's buffer is the gradient itself
                self.state = [[g.clone() for g in self.grads]]
                self._views.append(_members(self.state[0]))
            else:
                torch._foreach_mul_(self.state[0], self.momentum)
                torch._foreach_add_(self.state[0], self.grads)
            d_views = self._views[2]
        for i in members:
            torch._foreach_add_(p_views[i], d_views[i], alpha=-self.lrs[i])

    def _adam(self) -> None:
        beta1, beta2 = ADAM_BETAS
        p_views, g_views, m_views, v_views = self._views
        members = range(len(self.lrs))
        decoupled = self.name == "adamw"
        step = float(self.steps)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for i in members:
            lr, wd = self.lrs[i], self.weight_decays[i]
            p, g, m, v = p_views[i], g_views[i], m_views[i], v_views[i]
            if wd != 0:
                if decoupled:
                    torch._foreach_mul_(p, 1 - lr * wd)
                else:
                    torch._foreach_add_(g, p, alpha=wd)
            torch._foreach_lerp_(m, g, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, g, g, value=1 - beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bias_correction2_sqrt)
            torch._foreach_add_(denom, ADAM_EPS)
            torch._foreach_addcdiv_(p, m, denom, value=-(lr / bias_correction1))

    # -- fast mode: the whole stack at once ------------------------------------------------

    def _per_member(self, values: list[float], like: torch.Tensor) -> torch.Tensor:
        """``values`` as a [K, 1, ...] tensor that broadcasts over a stacked tensor ``like``."""
        shape = (len(values),) + (1,) * (like.dim() - 1)
        return torch.tensor(values, dtype=like.dtype).view(shape).to(like.device)

    def _fast_sgd(self) -> None:
        """torch.optim.SGD's rule (L2 into the gradient, momentum buffer seeded with the first
        gradient, no dampening) on every member at once."""
        for index, (p, g) in enumerate(zip(self.params, self.grads, strict=True)):
            d = torch.addcmul(g, p, self._wd[index])
            if self.momentum:  # the buffer starts at zero: the first step leaves it = d
                d = self.state[0][index].mul_(self.momentum).add_(d)
            p.addcmul_(d, self._neg_lr[index])

    def _fast_adam(self) -> None:
        """torch.optim.Adam's (L2 into the gradient) or AdamW's (decoupled decay) rule on
        every member at once."""
        beta1, beta2 = ADAM_BETAS
        step = float(self.steps)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for index, (p, g) in enumerate(zip(self.params, self.grads, strict=True)):
            m, v = self.state[0][index], self.state[1][index]
            if self.name == "adamw":
                p.mul_(self._decay[index])
            else:
                g = torch.addcmul(g, p, self._wd[index])
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            p.addcmul_(m / denom, self._neg_lr[index], value=1 / bias_correction1)
