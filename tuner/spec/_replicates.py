"""Seeds per configuration: ``replicates: k`` (k seed pairs, init and data order varying
together) or ``replicates: {init: a, data: b}`` (every init seed crossed with every data-order
seed, a x b replicates, so the spread can be split between the two).

The tags are wrapped in ``<...>`` so they are dropped from error paths: a bad count reads
``replicates``, a bad design field ``replicates.init``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

#: The most replicates one trial trains in lockstep.
MAX_REPLICATES = 32


class SeedDesign(BaseModel):
    """A crossed design: ``init`` init seeds x ``data`` data-order seeds, every pair trained.

    Replicate ``r = i * data + j`` trains under init seed ``i`` and data-order seed ``j``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    init: int = Field(1, ge=1, le=MAX_REPLICATES, description="init seeds (the table's rows)")
    data: int = Field(
        1, ge=1, le=MAX_REPLICATES, description="data-order seeds (the table's columns)"
    )

    @model_validator(mode="after")
    def _fits(self) -> SeedDesign:
        if self.count > MAX_REPLICATES:
            raise ValueError(
                f"init x data = {self.init} x {self.data} = {self.count} replicates; at most "
                f"{MAX_REPLICATES} train in lockstep"
            )
        return self

    @property
    def count(self) -> int:
        """Replicates per trial: one per (init seed, data-order seed) pair."""
        return self.init * self.data


def _kind(value: Any) -> str:
    return "<design>" if isinstance(value, dict | SeedDesign) else "<count>"


#: The ``replicates`` field: a count, or a crossed design.
Replicates = Annotated[
    Annotated[Annotated[int, Field(ge=1, le=MAX_REPLICATES)], Tag("<count>")]
    | Annotated[SeedDesign, Tag("<design>")],
    Discriminator(_kind),
]


def replicate_count(replicates: int | SeedDesign) -> int:
    """How many replicates a trial trains under ``replicates`` (a count or a design)."""
    return replicates.count if isinstance(replicates, SeedDesign) else replicates
