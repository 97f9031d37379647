"""The classic result, from a spec: in a 20-layer ReLU MLP on digits, He's scaling keeps the
signal and the net trains; Glorot's (torch's xavier_normal_, gain 1) halves the variance at
every layer and the net stalls at chance (Glorot & Bengio 2010; He et al. 2015). The spec is
``examples/deep-relu.yaml``."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

import storage
from tuner.spec import load_spec
from tuner.studies import run_study

EXAMPLES = Path(__file__).parents[3] / "examples"


def test_twenty_layer_relu_mlp_trains_under_kaiming_and_stalls_under_xavier(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'deep.db'}"
    spec = load_spec(EXAMPLES / "deep-relu.yaml")  # 19 hidden layers of 64 and the output
    run_study(spec, database_url=url, device="cpu")
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = session.execute(sa.select(storage.TrialResult)).scalars().all()
            value = {r.initializer: r.value for r in rows}
            layers = {r.initializer: (r.manifest_json or {})["layers"] for r in rows}
    finally:
        db.dispose()
    assert value["kaiming_normal"] is not None and value["kaiming_normal"] > 0.5
    xavier = value["xavier_normal#1"]  # torch's own: gain 1
    assert xavier is not None and xavier < 0.25  # ten classes: chance is 0.1
    assert {layer["params"]["gain"] for layer in layers["xavier_normal#1"]} == {1.0}
    # the same scaling with the ReLU gain, asked for explicitly, trains again
    auto = value["xavier_normal(gain=auto)"]
    assert auto is not None and auto > 0.4
