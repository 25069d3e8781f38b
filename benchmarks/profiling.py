"""Where a training step's time goes, by part, against each part's share of the FLOPs.

:func:`profile_parts` splits one pass of a step function into named parts from
:mod:`torch.profiler` events (forward by module scope, backward by autograd sequence number);
:func:`part_table` sets each part's time share beside its FLOP share. Used by
``train_speed.py --profile`` and ``yelp_speed.py --profile``.
"""

from __future__ import annotations

from torch import nn


def profile_parts(step, items, scopes: dict[nn.Module, str], named: dict[str, str]
                  ) -> dict[str, float]:
    """Seconds per part of ``step`` over ``items``, from :mod:`torch.profiler` events.

    A forward op belongs to the innermost module of ``scopes`` (module -> part) it ran in, or
    to ``named[event name]`` for a top-level event (an autograd Function such as the fused
    output layer); its backward node (linked by the autograd sequence number) to the same
    part + ``"_backward"``. The rest: ``optimizer`` (zero_grad, step), ``clip`` (top-level
    ops between the backward pass and the optimizer step), ``accumulate_grad``,
    ``other_forward`` (loss, KL, reparameterisation, concatenation) and ``other_backward``.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    handles = []
    for module, part in scopes.items():
        def enter(mod, _inputs, part=part):
            mod._cyclevae_scopes = [*getattr(mod, "_cyclevae_scopes", []),
                                    record_function("part:" + part)]
            mod._cyclevae_scopes[-1].__enter__()

        def leave(mod, _inputs, _output):
            mod._cyclevae_scopes.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for item in items:
                step(item)
    finally:
        for handle in handles:
            handle.remove()
    events = prof.events()
    part_of_seq: dict[int, str] = {}

    def claim(event, part: str) -> None:
        if event.sequence_nr >= 0:
            part_of_seq.setdefault(event.sequence_nr, part)
        for child in event.cpu_children:
            inner = child.name[5:] if child.name.startswith("part:") else part
            claim(child, inner)

    top = sorted((e for e in events if e.cpu_parent is None), key=lambda e: e.time_range.start)
    for event in top:
        if event.name.startswith("part:"):
            claim(event, event.name[5:])
        elif event.name in named:
            claim(event, named[event.name])
    seconds: dict[str, float] = {}
    phase = "forward"
    for event in top:
        name = event.name
        if name.startswith("Optimizer."):
            part, phase = "optimizer", "forward" if ".step" in name else phase
        elif name.startswith("autograd::engine::evaluate_function"):
            phase = "backward"
            if "AccumulateGrad" in name:
                part = "accumulate_grad"
            else:
                part = part_of_seq.get(event.sequence_nr, "other") + "_backward"
        elif phase == "backward" or phase == "clip":
            part, phase = "clip", "clip"
        elif name.startswith("part:"):
            for inner, s in _scope_seconds(event, name[5:]).items():
                seconds[inner] = seconds.get(inner, 0.0) + s
            continue
        else:
            part = named.get(name, "other_forward")
        seconds[part] = seconds.get(part, 0.0) + event.cpu_time_total / 1e6
    return seconds


def _scope_seconds(event, part: str) -> dict[str, float]:
    """Seconds of a ``part:`` scope event, nested scopes counted to their own parts."""
    out = {part: event.cpu_time_total / 1e6}
    stack = list(event.cpu_children)
    while stack:
        child = stack.pop()
        if child.name.startswith("part:"):
            out[part] -= child.cpu_time_total / 1e6
            for inner, s in _scope_seconds(child, child.name[5:]).items():
                out[inner] = out.get(inner, 0.0) + s
        else:
            stack.extend(child.cpu_children)
    return out


def part_table(seconds: dict[str, float], forward_flops: dict[str, float], steps: int
               ) -> dict[str, dict[str, float]]:
    """``{part: {"ms_per_step", "time_share", "flop_share"}}``, largest first.

    Args:
        seconds: seconds per part over ``steps`` steps (from :func:`profile_parts`).
        forward_flops: a step's FLOPs per part (forward + backward = 3 x forward, the
            backward counted as twice the forward under ``part + "_backward"``).
        steps: how many steps ``seconds`` covers.
    """
    total_s = sum(seconds.values())
    total_f = sum(forward_flops.values())
    shares: dict[str, float] = {}
    for part, flop in forward_flops.items():
        shares[part] = flop / 3 / total_f
        shares[part + "_backward"] = 2 * flop / 3 / total_f
    return {part: {"ms_per_step": round(1e3 * s / steps, 2),
                   "time_share": round(s / total_s, 3),
                   "flop_share": round(shares.get(part, 0.0), 3)}
            for part, s in sorted(seconds.items(), key=lambda kv: -kv[1])}
