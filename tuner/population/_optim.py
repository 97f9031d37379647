"""Per-member optimizer updates over stacked parameters: each member its own lr and L2 lambda.

Exact mode replays, member by member, the op sequence of torch.optim's single-tensor SGD,
Adam and AdamW (what ``make_optimizer`` gets on CPU) on that member's slices, through
``torch._foreach_*`` ops whose CPU path calls the very per-tensor kernels the optimizer calls:
each member's update is the single-trial update, bit for bit. Fast mode calls torch.optim's
fused kernels (``fused=True``), once per member: the same update rule in one pass over the
memory, rounded differently. Ops with no per-member constant run once on the whole stack.
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
        fused: bool,
    ) -> None:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}")
        self.name, self.momentum, self.fused = name, momentum, fused
        self.lrs, self.weight_decays = list(lrs), list(weight_decays)
        self.state: list[Tensors] = []  # sgd: [momentum buffers]; adam(w): [exp_avg, exp_avg_sq]
        self.steps = 0
        self._step_t: torch.Tensor | None = None  # fused adam(w): the step count on the device
        self.params: Tensors = []
        self.grads: Tensors = []
        self._views: list[
            list[Tensors]
        ] = []  # per stacked list (params, grads, *state), per member

    def bind(self, params: Tensors, grads: Tensors) -> None:
        """The tensors ``step`` updates and reads (the stack's, which ``keep`` replaces)."""
        self.params, self.grads = params, grads
        if not self.state:
            groups = {"sgd": 1 if self.momentum else 0, "adam": 2, "adamw": 2}[self.name]
            zeros = self.fused or self.name != "sgd"  # exact sgd clones its first gradient
            if zeros:
                self.state = [[torch.zeros_like(p) for p in params] for _ in range(groups)]
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
        if self.name == "sgd":
            self._sgd()
        else:
            self._adam()

    def _sgd(self) -> None:
        p_views, g_views = self._views[0], self._views[1]
        members = range(len(self.lrs))
        if self.fused:
            b_views = self._views[2] if self.momentum else [[] for _ in members]
            for i in members:
                torch._fused_sgd_(
                    p_views[i],
                    g_views[i],
                    b_views[i],
                    weight_decay=self.weight_decays[i],
                    momentum=self.momentum,
                    lr=self.lrs[i],
                    dampening=0.0,
                    nesterov=False,
                    maximize=False,
                    is_first_step=self.steps == 1,
                )
            return
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
        if self.fused:
            if self._step_t is None:
                device = self.params[0].device
                self._step_t = torch.zeros((), dtype=torch.float32, device=device)
            self._step_t += 1
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            for i in members:
                kernel(
                    p_views[i],
                    g_views[i],
                    m_views[i],
                    v_views[i],
                    [],
                    [self._step_t] * len(p_views[i]),
                    lr=self.lrs[i],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=self.weight_decays[i],
                    eps=ADAM_EPS,
                    amsgrad=False,
                    maximize=False,
                )
            return
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
