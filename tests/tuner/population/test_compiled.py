"""The stacked step under torch.compile: the hand-written step's numbers, any activation,
and one graph however many members leave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import storage
from tuner.population import Member, PopulationConfig, StackedMLP, _compiled, execute_population
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.studies import replay_trial, run_study
from tuner.tasks import build_task
from tuner.training import TrainConfig

CPU = torch.device("cpu")


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[CompileCounterWithBackend]:
    """Graphs handed to the compiler, compiled by AOTAutograd without code generation."""
    torch._dynamo.reset()
    counting = CompileCounterWithBackend("aot_eager")
    monkeypatch.setattr(_compiled, "BACKEND", counting)
    yield counting
    torch._dynamo.reset()


def _models(activation: type[nn.Module], k: int) -> list[nn.Module]:
    torch.manual_seed(0)
    return [
        nn.Sequential(nn.Flatten(), nn.Linear(12, 16), activation(), nn.Linear(16, 3))
        for _ in range(k)
    ]


@pytest.mark.parametrize("activation", [nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU])
def test_the_compiled_step_gives_the_hand_written_steps_losses_and_gradients(
    activation: type[nn.Module], counter: CompileCounterWithBackend
) -> None:
    written, compiled = StackedMLP(_models(activation, 3)), StackedMLP(_models(activation, 3))
    x, y = torch.randn(3, 8, 3, 4), torch.randint(0, 3, (24,))
    expected = written.loss_and_grads(x, y)
    got = _compiled.compiled_step(compiled)(x, y)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(compiled.grads, written.grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert counter.frame_count == 1  # a graph, not a break at the activation


def _members() -> list[Member]:
    """Five trials that leave at epochs 1, 2, 3, 4 and 4: the stack goes 5, 4, 3, 2."""
    members = []
    for n, epochs in enumerate([1, 2, 3, 4, 4]):
        params = TrialParams("xavier_uniform", "xavier_uniform", 0.02 * (n + 1), 0.0, 64, 9)
        config = TrainConfig(lr=params.lr, weight_decay=1e-4, batch_size=64, patience=9,
                             max_epochs=epochs, optimizer="adam")  # fmt: skip
        members.append(Member(n, params, config))
    return members


def test_members_leaving_reuse_one_graph_and_train_as_the_exact_step_does(
    counter: CompileCounterWithBackend,
) -> None:
    spec = parse_spec(
        {"name": "c", "task": {"hidden": [16], "activation": "gelu", "dataset": "digits"}}
    )
    task = build_task(spec.task)
    assert task.data is not None

    def train(compile: bool) -> list[list[float]]:
        outcomes = execute_population(
            _members(), task=task, data=task.data, study_seed=3, device=CPU,  # type: ignore[arg-type]
            config=PopulationConfig(size=5, fast=False, compile=compile),
        )  # fmt: skip
        return [[s.val_loss for s in o.history] for o in outcomes]

    compiled = train(compile=True)
    # digits: 1437 training rows in batches of 64, so a short last batch every epoch, and
    # the stack shrinks four times; one graph for all (dynamic K and batch).
    assert counter.frame_count == 1
    assert [len(h) for h in compiled] == [1, 2, 3, 4, 4]
    exact = train(compile=False)
    for mine, theirs in zip(compiled, exact, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-4)


def test_a_compiled_study_records_it_and_replays_compiled(
    sqlite_url: str, counter: CompileCounterWithBackend
) -> None:
    spec = parse_spec(
        {
            "name": "compiled",
            "task": {"hidden": [16], "activation": "tanh", "dataset": "digits"},
            "search": {"initializer": ["xavier_uniform", "orthogonal"], "batch_size": 128},
            "budget": {"n_trials": 8, "max_epochs": 2},
            "sampler": "random",
            "pruner": "none",
        }
    )
    run_study(spec, database_url=sqlite_url, device="cpu", population=4, compile=True)
    assert counter.frame_count == 1  # two populations, other models: the same graph
    db = storage.Database(sqlite_url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, "compiled")
        facts = [r.manifest_json["population"] for r in rows if r.manifest_json]
        assert len(facts) == 8 and all(f["compiled"] and f["size"] == 4 for f in facts)
        replay = replay_trial(db, "compiled", rows[0].trial_number)
    finally:
        db.dispose()
    assert replay.exact and replay.outcome.value == rows[0].value
