"""The two-way ANOVA without replication against tables worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tuner.variance import by_initializer, pool, seed_table, seed_variance, two_way_anova

# rows: init seeds, columns: data-order seeds
TABLE = [
    [1.0, 3.0, 5.0],
    [2.0, 6.0, 7.0],
    [6.0, 9.0, 15.0],
]


def test_a_three_by_three_table_by_hand() -> None:
    # grand mean 54 / 9 = 6; row means 3, 5, 10; column means 3, 6, 9
    # SS_init = 3 * ((3-6)^2 + (5-6)^2 + (10-6)^2) = 3 * 26 = 78, df 2, MS 39
    # SS_data = 3 * ((3-6)^2 + (6-6)^2 + (9-6)^2) = 3 * 18 = 54, df 2, MS 27
    # residuals y - row - col + 6:  1 0 -1 / 0 1 -1 / -1 -1 2  -> SS_res = 10, df 4, MS 2.5
    # total: sum (y - 6)^2 = 35 + 17 + 90 = 142 = 78 + 54 + 10
    # components: residual 2.5, init (39 - 2.5) / 3 = 73/6, data (27 - 2.5) / 3 = 49/6
    # their sum 137/6: shares 73/137, 49/137, 15/137
    found = two_way_anova(TABLE)
    assert (found.init.ss, found.init.df, found.init.ms) == pytest.approx((78, 2, 39))
    assert (found.data.ss, found.data.df, found.data.ms) == pytest.approx((54, 2, 27))
    assert (found.residual.ss, found.residual.df, found.residual.ms) == pytest.approx((10, 4, 2.5))
    assert found.init.variance == pytest.approx(73 / 6)
    assert found.data.variance == pytest.approx(49 / 6)
    assert found.residual.variance == pytest.approx(2.5)
    assert found.init.std == pytest.approx((73 / 6) ** 0.5)
    shares = (found.init.share, found.data.share, found.residual.share)
    assert shares == pytest.approx((73 / 137, 49 / 137, 15 / 137))
    assert (found.n_tables, found.n_values) == (1, 9)


def test_transposing_swaps_init_and_data() -> None:
    found = two_way_anova([list(col) for col in zip(*TABLE, strict=True)])
    assert found.init.ss == pytest.approx(54) and found.data.ss == pytest.approx(78)


def test_a_component_below_the_residual_is_truncated_at_zero() -> None:
    # [[1, 2], [2, 1]]: row and column means are all 1.5, so SS_init = SS_data = 0;
    # residuals -0.5, 0.5, 0.5, -0.5: SS_res = 1, df 1. (0 - 1) / 2 < 0 -> 0
    found = two_way_anova([[1.0, 2.0], [2.0, 1.0]])
    assert (found.init.ss, found.data.ss, found.residual.ss) == pytest.approx((0, 0, 1))
    assert (found.init.variance, found.data.variance, found.residual.variance) == (0, 0, 1)
    assert (found.init.share, found.data.share, found.residual.share) == (0, 0, 1)


def test_an_additive_table_has_no_residual() -> None:
    found = two_way_anova([[0.0, 1.0], [10.0, 11.0]])  # init adds 10, data adds 1
    # SS_init = 2 * (5^2 + 5^2) = 100, SS_data = 2 * (0.5^2 + 0.5^2) = 1; components 50, 0.5
    assert found.residual.ss == pytest.approx(0, abs=1e-12)
    assert (found.init.variance, found.data.variance) == pytest.approx((50, 0.5))
    assert found.init.share == pytest.approx(50 / 50.5)


def test_no_spread_has_no_shares() -> None:
    found = two_way_anova([[0.5, 0.5], [0.5, 0.5]])
    assert (found.init.share, found.data.share, found.residual.share) == (None, None, None)


def test_pooling_adds_sums_of_squares_and_averages_components_and_shares() -> None:
    # [[0, 2], [2, 4]]: SS_init 4, SS_data 4, SS_res 0 -> components 2, 2, 0 (shares 1/2,
    # 1/2, 0). [[10, 10], [10, 12]]: mean 10.5, rows 10, 11 -> SS_init 1; columns 10, 11 ->
    # SS_data 1; residuals +-0.5 -> SS_res 1 -> components (1 - 1) / 2 = 0, 0, 1 (shares 0,
    # 0, 1). Pooled: SS 5, 5, 1 on df 2, 2, 2; components 1, 1, 0.5; shares 1/4, 1/4, 1/2
    found = pool([[[0.0, 2.0], [2.0, 4.0]], [[10.0, 10.0], [10.0, 12.0]]])
    assert (found.init.ss, found.data.ss, found.residual.ss) == pytest.approx((5, 5, 1))
    assert (found.init.df, found.data.df, found.residual.df) == (2, 2, 2)
    assert (found.init.variance, found.data.variance, found.residual.variance) == pytest.approx(
        (1, 1, 0.5)
    )
    shares = (found.init.share, found.data.share, found.residual.share)
    assert shares == pytest.approx((0.25, 0.25, 0.5))
    assert (found.n_tables, found.n_values) == (2, 8)


def test_an_unstable_trial_does_not_wipe_out_the_others_components() -> None:
    steady = [[0.90, 0.92], [0.94, 0.96]]  # additive: init 0.04, data 0.02 apart, no residual
    # SS_init 2 * 2 * 0.02^2 = 0.0016, SS_data 0.0004: components 0.0008, 0.0002, 0
    # (shares 0.8, 0.2, 0)
    unstable = [[0.9, 0.0], [0.0, 0.9]]  # two seed pairs collapse: pure interaction
    # row and column means all 0.45: SS_init = SS_data = 0; residuals +-0.45: SS_res 0.81;
    # components 0, 0, 0.81 (shares 0, 0, 1)
    found = pool([steady, unstable])
    # averaged: 0.0004, 0.0001, 0.405. (Pooled mean squares would give init
    # (0.0016 / 2 - 0.81 / 2) / 2 < 0, so 0: the steady trial's init seed would vanish.)
    variances = (found.init.variance, found.data.variance, found.residual.variance)
    assert variances == pytest.approx((0.0004, 0.0001, 0.405))
    shares = (found.init.share, found.data.share, found.residual.share)
    assert shares == pytest.approx((0.4, 0.1, 0.5))
    assert (found.init.ss, found.residual.ss) == pytest.approx((0.0016, 0.81))  # SS add up


def test_pooling_tables_of_different_shapes() -> None:
    # [[0, 2], [2, 4]] (2 x 2): SS_init 4 (df 1), SS_data 4 (df 1), SS_res 0 (df 1)
    # [[0, 0], [0, 0], [3, 3]] (3 x 2): rows 0, 0, 3, mean 1 -> SS_init 2 * 6 = 12 (df 2);
    # SS_data 0 (df 1); SS_res 0 (df 2). Components: the first 2, 2, 0; the second
    # (12 / 2) / 2 = 3, 0, 0: mean 2.5, 1, 0. Shares: 1/2, 1/2, 0 and 1, 0, 0: mean 3/4, 1/4, 0
    found = pool([[[0.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0], [3.0, 3.0]]])
    assert (found.init.df, found.data.df, found.residual.df) == (3, 2, 3)
    assert (found.init.variance, found.data.variance) == pytest.approx((2.5, 1))
    assert (found.init.share, found.data.share, found.residual.share) == pytest.approx(
        (3 / 4, 1 / 4, 0)
    )


@pytest.mark.parametrize(
    ("tables", "fragment"),
    [
        ([[[1.0, 2.0]]], "at least 2 x 2"),
        ([[[1.0], [2.0]]], "at least 2 x 2"),
        ([[[1.0, 2.0], [3.0]]], "same number of values"),
        ([[[1.0, 2.0], [3.0, float("nan")]]], "finite"),
        ([], "at least one table"),
    ],
)
def test_tables_that_cannot_be_analysed_are_refused(
    tables: list[list[list[float]]], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        pool(tables)


@dataclass(frozen=True)
class Rep:
    init_seed: int
    data_seed: int
    value: float | None


def _crossed(table: list[list[float]], inits: list[int], datas: list[int]) -> list[Rep]:
    return [Rep(i, d, table[a][b]) for a, i in enumerate(inits) for b, d in enumerate(datas)]


def test_replicate_rows_form_the_table_by_their_seeds() -> None:
    cells = _crossed(TABLE, [70, 50, 60], [9, 8, 7])
    assert seed_table(cells) == TABLE  # rows and columns in order of first appearance
    shuffled = [cells[i] for i in (4, 0, 8, 2, 6, 1, 3, 5, 7)]
    table = seed_table(shuffled)
    assert table is not None and sorted(map(sorted, table)) == sorted(map(sorted, TABLE))
    found = seed_variance(shuffled)
    assert found is not None and found.init.ss == pytest.approx(78)


@pytest.mark.parametrize(
    "cells",
    [
        [Rep(1, 10, 0.5), Rep(2, 20, 0.6), Rep(3, 30, 0.7)],  # seeds varied together
        [Rep(1, 10, 0.5), Rep(1, 20, 0.6), Rep(1, 30, 0.7)],  # one init seed only
        [Rep(1, 10, 0.5), Rep(1, 20, 0.6), Rep(2, 10, 0.7)],  # a cell missing
        [Rep(1, 10, 0.5), Rep(1, 20, 0.6), Rep(2, 10, 0.7), Rep(2, 10, 0.8)],  # one twice
        [Rep(1, 10, 0.5), Rep(1, 20, 0.6), Rep(2, 10, 0.7), Rep(2, 20, None)],  # diverged
    ],
    ids=["diagonal", "one-init", "missing", "twice", "no-value"],
)
def test_replicates_that_do_not_cross_form_no_table(cells: list[Rep]) -> None:
    assert seed_table(cells) is None and seed_variance(cells) is None


def test_by_initializer_pools_all_trials_then_each_initializer() -> None:
    a = _crossed([[0.0, 2.0], [2.0, 4.0]], [1, 2], [3, 4])
    b = _crossed([[10.0, 10.0], [10.0, 12.0]], [5, 6], [7, 8])
    diagonal = [Rep(1, 10, 0.5), Rep(2, 20, 0.6)]
    groups = by_initializer([("orthogonal", a), ("lsuv", b), ("lsuv", diagonal)])
    assert [label for label, _ in groups] == [None, "lsuv", "orthogonal"]
    every, lsuv, orthogonal = (found for _, found in groups)
    assert every.n_tables == 2 and every.init.variance == pytest.approx(1)
    assert lsuv.n_tables == 1 and lsuv.residual.ss == pytest.approx(1)
    assert orthogonal.init.ss == pytest.approx(4)
    assert by_initializer([("lsuv", diagonal)]) == []
