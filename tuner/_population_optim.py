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


def _columns(stacked: Tensors) -> list[tuple[torch.Tensor, ...]]:
    return [t.unbind(0) for t in stacked]


def _member(columns: list[tuple[torch.Tensor, ...]], i: int) -> Tensors:
    return [c[i] for c in columns]


class StackedOptimizer:
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

    def keep(self, members: torch.Tensor) -> None:
        """Only these members (indices into the current stack) stay."""
        kept = members.tolist()
        self.lrs = [self.lrs[i] for i in kept]
        self.weight_decays = [self.weight_decays[i] for i in kept]
        self.state = [[t.index_select(0, members) for t in group] for group in self.state]

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors) -> None:
        self.steps += 1
        if self.name == "sgd":
            self._sgd(params, grads)
        else:
            self._adam(params, grads)

    def _sgd(self, params: Tensors, grads: Tensors) -> None:
        p_cols, g_cols = _columns(params), _columns(grads)
        members = range(len(self.lrs))
        if self.fused:
            if self.momentum and not self.state:
                self.state = [[torch.zeros_like(p) for p in params]]
            b_cols = _columns(self.state[0]) if self.momentum else []
            for i in members:
                torch._fused_sgd_(
                    _member(p_cols, i),
                    _member(g_cols, i),
                    _member(b_cols, i) if self.momentum else [],
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
                torch._foreach_add_(
                    _member(g_cols, i), _member(p_cols, i), alpha=self.weight_decays[i]
                )
        direction = grads
        if self.momentum:
            if not self.state:
                self.state = [[g.clone() for g in grads]]
            else:
                torch._foreach_mul_(self.state[0], self.momentum)
                torch._foreach_add_(self.state[0], grads)
            direction = self.state[0]
        d_cols = _columns(direction)
        for i in members:
            torch._foreach_add_(_member(p_cols, i), _member(d_cols, i), alpha=-self.lrs[i])

    def _adam(self, params: Tensors, grads: Tensors) -> None:
        beta1, beta2 = ADAM_BETAS
        if not self.state:
            self.state = [[torch.zeros_like(p) for p in params] for _ in range(2)]
        p_cols, g_cols = _columns(params), _columns(grads)
        m_cols, v_cols = _columns(self.state[0]), _columns(self.state[1])
        members = range(len(self.lrs))
        decoupled = self.name == "adamw"
        if self.fused:
            if self._step_t is None:
                self._step_t = torch.zeros((), dtype=torch.float32, device=params[0].device)
            self._step_t += 1
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            for i in members:
                kernel(
                    _member(p_cols, i),
                    _member(g_cols, i),
                    _member(m_cols, i),
                    _member(v_cols, i),
                    [],
                    [self._step_t] * len(params),
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
            p, g, m, v = (_member(c, i) for c in (p_cols, g_cols, m_cols, v_cols))
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
