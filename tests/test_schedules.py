"""Schedules against eq. (6)-(7) of Fu et al. written out independently, term by term."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclevae.schedules import (
    BetaScheduler,
    CyclicalLR,
    beta_schedule,
    constant_beta,
    cyclical_beta,
    cyclical_lr_factor,
    monotonic_beta,
)


def reference_beta(t: int, T: int, M: int, R: float, shape: str, start: float, stop: float) -> float:
    """Eq. (7) with t = 1..T, as printed in the paper, then scaled to [start, stop]."""
    tau = ((t - 1) % math.ceil(T / M)) / (T / M)
    if R == 0 or tau > R:
        return stop
    if shape == "linear":
        f = tau / R
    elif shape == "sigmoid":
        f = 1 / (1 + math.exp(-(12 * tau / R - 6)))
    else:
        f = 0.5 - 0.5 * math.cos(math.pi * tau / R)
    return start + (stop - start) * f


@st.composite
def schedules(draw):
    T = draw(st.integers(1, 5000))
    M = draw(st.integers(1, min(T, 50)))
    R = draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0)))
    shape = draw(st.sampled_from(["linear", "sigmoid", "cosine"]))
    stop = draw(st.floats(0.0, 10.0))
    start = draw(st.floats(0.0, 1.0)) * stop
    return T, M, R, shape, start, stop


@settings(max_examples=300, deadline=None)
@given(schedules(), st.data())
def test_cyclical_beta_matches_equation(sched, data):
    T, M, R, shape, start, stop = sched
    t = data.draw(st.integers(1, T))
    got = cyclical_beta(t - 1, T, n_cycles=M, ratio=R, shape=shape, start=start, stop=stop)
    assert got == pytest.approx(reference_beta(t, T, M, R, shape, start, stop), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(schedules())
def test_vectorised_schedule_equals_pointwise(sched):
    T, M, R, shape, start, stop = sched
    T = min(T, 600)
    M = min(M, T)
    values = beta_schedule(T, n_cycles=M, ratio=R, shape=shape, start=start, stop=stop)
    assert values.shape == (T,)
    expected = [reference_beta(t, T, M, R, shape, start, stop) for t in range(1, T + 1)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-9)


def test_ratio_zero_is_constant_and_constant_helper():
    assert np.all(beta_schedule(1000, n_cycles=4, ratio=0.0) == 1.0)
    assert np.all(beta_schedule(100, n_cycles=1, ratio=0.0, start=0.1, stop=0.5) == 0.5)
    assert constant_beta(17, 100) == 1.0
    assert constant_beta(17, 100, stop=0.5) == 0.5


def test_monotonic_is_one_cycle():
    # Bowman et al.: linear from 0 to 1 over the first quarter, then 1.
    T = 40_000
    assert monotonic_beta(0, T) == 0.0
    assert monotonic_beta(5_000, T) == pytest.approx(0.5)
    assert monotonic_beta(10_000, T) == pytest.approx(1.0)
    assert monotonic_beta(30_000, T) == 1.0
    values = beta_schedule(T, n_cycles=1, ratio=0.25)
    assert np.all(np.diff(values) >= 0)


def test_figure2_cyclical_shape():
    # Paper Figure 2: T = 40K, M = 4, R = 0.5; beta restarts at 0 every 10K iterations.
    values = beta_schedule(40_000, n_cycles=4, ratio=0.5)
    for c in range(4):
        assert values[c * 10_000] == 0.0
        assert values[c * 10_000 + 2_500] == pytest.approx(0.5)
        assert values[c * 10_000 + 5_000] == pytest.approx(1.0)
        assert np.all(values[c * 10_000 + 5_000 : (c + 1) * 10_000] == 1.0)


def test_non_integer_period():
    # T/M = 2.5: period ceil = 3 steps, tau = mod(s, 3) / 2.5
    vals = beta_schedule(10, n_cycles=4, ratio=1.0)
    np.testing.assert_allclose(vals, [0, 0.4, 0.8, 0, 0.4, 0.8, 0, 0.4, 0.8, 0], atol=1e-12)


def test_shapes_are_monotone_within_rise_and_end_near_stop():
    for shape in ("linear", "sigmoid", "cosine"):
        v = beta_schedule(1000, n_cycles=1, ratio=0.5, shape=shape)
        assert np.all(np.diff(v) >= -1e-12), shape
        assert v[0] < 0.01 and v[499] > 0.99 and v[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(total_steps=0), "total_steps"),
        (dict(total_steps=10, n_cycles=0), "n_cycles"),
        (dict(total_steps=10, n_cycles=11), "n_cycles"),
        (dict(total_steps=10, ratio=1.5), "ratio"),
        (dict(total_steps=10, ratio=-0.1), "ratio"),
        (dict(total_steps=10, ratio=float("nan")), "ratio"),
        (dict(total_steps=10, shape="square"), "shape"),
        (dict(total_steps=10, start=0.8, stop=0.5), "start"),
        (dict(total_steps=10, stop=float("nan")), "stop"),
        (dict(total_steps=float("nan")), "total_steps"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    total = kwargs.pop("total_steps")
    with pytest.raises(ValueError, match=name):
        cyclical_beta(0, total, **kwargs)
    with pytest.raises(ValueError, match=name):
        BetaScheduler(total, **kwargs)


def test_bad_step():
    with pytest.raises(ValueError, match="step"):
        cyclical_beta(-1, 10)
    with pytest.raises(ValueError, match="step"):
        cyclical_beta(float("nan"), 10)


def test_scheduler_counts_iterations_and_resumes():
    sched = BetaScheduler(100, n_cycles=2, ratio=0.5, start=0.1)
    seen = [sched.value]
    for _ in range(99):
        seen.append(sched.step())
    np.testing.assert_allclose(seen, beta_schedule(100, n_cycles=2, ratio=0.5, start=0.1))
    # resume from the middle
    a = BetaScheduler(100, n_cycles=2, ratio=0.5)
    for _ in range(37):
        a.step()
    b = BetaScheduler(10, n_cycles=1, ratio=0.0)
    b.load_state_dict(a.state_dict())
    assert b.value == a.value and b.last_step == 37
    assert [b.step() for _ in range(5)] == [a.step() for _ in range(5)]


def test_scheduler_in_epochs_rises_within_epoch_when_interpolating():
    batches = 50
    smooth = BetaScheduler(40, n_cycles=4, ratio=0.5, start=0.1, steps_per_unit=batches)
    stepped = BetaScheduler(40, n_cycles=4, ratio=0.5, start=0.1, steps_per_unit=batches,
                            interpolate=False)
    s_vals, e_vals = [], []
    for _ in range(batches * 40):
        s_vals.append(smooth.value)
        e_vals.append(stepped.value)
        smooth.step()
        stepped.step()
    s_vals, e_vals = np.array(s_vals), np.array(e_vals)
    first_epoch = slice(0, batches)
    assert np.all(np.diff(s_vals[first_epoch]) > 0)  # smooth rise inside epoch 0
    assert np.all(e_vals[first_epoch] == 0.1)  # stepped: constant inside the epoch
    # at epoch boundaries both agree with the epoch-level schedule
    per_epoch = beta_schedule(40, n_cycles=4, ratio=0.5, start=0.1)
    np.testing.assert_allclose(s_vals[::batches], per_epoch)
    np.testing.assert_allclose(e_vals[::batches], per_epoch)
    # every cycle restarts at start
    for c in range(4):
        assert s_vals[c * 10 * batches] == pytest.approx(0.1)


def test_cyclical_lr_half_cosine_restarts():
    assert cyclical_lr_factor(0, 100, 4) == 1.0
    assert cyclical_lr_factor(12.5, 100, 4) == pytest.approx(0.5)
    assert cyclical_lr_factor(25, 100, 4) == 1.0  # restart
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = CyclicalLR(opt, 8, n_cycles=2, steps_per_unit=10)
    lrs = []
    for _ in range(80):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.05)  # half-way through cycle 1 (epoch 2 of 4)
    assert lrs[40] == pytest.approx(0.1)  # restart at epoch 4
    assert all(lrs[i + 1] < lrs[i] for i in range(39))
    state = sched.state_dict()
    opt2 = torch.optim.SGD([param], lr=0.1)
    sched2 = CyclicalLR(opt2, 8, n_cycles=2, steps_per_unit=10)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr()


def authors_ptb_schedule(epochs: int, batches: int, cycle: int, warmup: int, lr0: float
                         ) -> tuple[list[float], list[float]]:
    """Fu et al.'s ``train_text_cyc_ptb.py`` loop written out: the lr set once per epoch from
    ((epoch - 1) % cycle) / cycle; beta reset to 0.1 at each cycle start and raised by
    1 / (warmup * batches) (capped at 1) after each batch. Returns the (beta, lr) each batch
    trains with (their increment happens before the batch; ours after, so ours is one batch
    behind)."""
    betas, lrs, beta = [], [], 0.1
    for epoch in range(1, epochs + 1):
        lr = lr0 * 0.5 * (1 + np.cos(float((epoch - 1) % cycle) / cycle * np.pi))
        if (epoch - 1) % cycle == 0:
            beta = 0.1
        for _ in range(batches):
            betas.append(beta)  # the beta this batch would use under our order
            lrs.append(lr)
            beta = min(1.0, beta + 1.0 / (warmup * batches))
    return betas, lrs


def test_offset_ramp_and_per_epoch_lr_reproduce_the_authors_ptb_script() -> None:
    epochs, batches = 40, 30
    betas, lrs = authors_ptb_schedule(epochs, batches, cycle=10, warmup=5, lr0=1e-3)
    sched = BetaScheduler(epochs, n_cycles=4, ratio=0.5, start=0.1, steps_per_unit=batches,
                          ramp="offset")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    lr_sched = CyclicalLR(opt, epochs, n_cycles=4, steps_per_unit=batches, interpolate=False)
    ours_beta, ours_lr = [], []
    for _ in range(epochs * batches):
        ours_beta.append(sched.value)
        ours_lr.append(opt.param_groups[0]["lr"])
        sched.step()
        opt.step()
        lr_sched.step()
    np.testing.assert_allclose(ours_beta, betas, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours_lr, lrs, rtol=1e-12)
    assert min(ours_lr) == pytest.approx(2.447e-5, rel=1e-3)  # the authors' lowest lr
    first_one = ours_beta.index(1.0) / batches  # beta reaches 1 after 4.5 of 5 rising epochs
    assert first_one == pytest.approx(4.5, abs=1 / batches)
    # eq. 6 (span) takes the whole 5 epochs instead
    span = BetaScheduler(epochs, n_cycles=4, ratio=0.5, start=0.1, steps_per_unit=batches)
    values = []
    for _ in range(10 * batches):
        values.append(span.value)
        span.step()
    assert values.index(1.0) / batches == pytest.approx(5.0, abs=1 / batches)


def test_offset_ramp_monotonic_reaches_stop_after_nine_of_ten_epochs() -> None:
    sched = BetaScheduler(40, n_cycles=1, ratio=0.25, start=0.1, steps_per_unit=10,
                          ramp="offset")
    values = []
    for _ in range(400):
        values.append(sched.value)
        sched.step()
    assert values.index(1.0) == 90 and max(values) == 1.0 and values[0] == 0.1


def test_ramp_state_round_trips_and_old_states_load() -> None:
    a = BetaScheduler(10, n_cycles=2, ratio=0.5, start=0.1, ramp="offset")
    for _ in range(3):
        a.step()
    b = BetaScheduler(10)
    b.load_state_dict(a.state_dict())
    assert b.ramp == "offset" and b.value == a.value
    old = a.state_dict()
    del old["ramp"]  # a checkpoint of an earlier version
    b.load_state_dict(old)
    assert b.ramp == "span"
    with pytest.raises(ValueError, match="ramp must be one of"):
        cyclical_beta(0, 10, ramp="steep")


def test_per_epoch_lr_needs_whole_cycles() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="interpolate=False"):
        CyclicalLR(opt, 3, n_cycles=4, steps_per_unit=10, interpolate=False)


@pytest.mark.parametrize("interpolate, steps_per_unit", [(True, 1), (True, 5), (False, 5)])
def test_beta_scheduler_past_its_end_repeats_or_holds(interpolate, steps_per_unit):
    """Past ``total`` eq. 7's modulo starts a new cycle (documented); ``hold=True`` keeps the
    value of the schedule's last step instead (a run trained longer)."""
    kwargs = dict(n_cycles=2, ratio=0.5, steps_per_unit=steps_per_unit, interpolate=interpolate)
    repeat, hold = BetaScheduler(4, **kwargs), BetaScheduler(4, hold=True, **kwargs)
    within = [(repeat.step(), hold.step()) for _ in range(4 * steps_per_unit - 1)]
    assert all(a == b for a, b in within)  # identical inside the schedule
    last = hold.value
    assert last == 1.0
    past_repeat = [repeat.step() for _ in range(2 * steps_per_unit)]
    past_hold = [hold.step() for _ in range(2 * steps_per_unit)]
    assert past_repeat[0] == 0.0  # a new cycle from start
    assert past_hold == [last] * len(past_hold)
    state = hold.state_dict()
    again = BetaScheduler(4, **kwargs)
    again.load_state_dict(state)
    assert again.hold and again.value == last
