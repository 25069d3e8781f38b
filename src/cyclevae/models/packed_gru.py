"""``nn.GRU`` over packed sequences with the recurrence's backward written out (float32 CPU).

PyTorch's CPU GRU over a :class:`~torch.nn.utils.rnn.PackedSequence` runs a cell of ~15
separate operators per time step and leaves the backward to autograd, which replays ~20 small
nodes per step and computes the recurrent weight gradient as one small product per step
(oneDNN's fused RNN kernels cover the LSTM only). :class:`PackedGRU` is an ``nn.GRU`` (same
parameters, state dict and results up to float32 rounding) whose one-layer forward over a
packed float32 CPU sequence:

- projects every direction's inputs with one product (``ops.linear``, oneDNN), ``[T, D 3H]``;
- runs the recurrence itself, one ``[b_t, H] x [H, 3H]`` product and six pointwise passes
  per step on views cut once (``split``), keeping the gates it needs for the backward;
- in the backward, computes the step-independent factors of the gates' derivatives over all
  steps at once (Cho et al., 2014; PyTorch's gate order r, z, n and ``n = tanh(W_in x + b_in +
  r (W_hn h + b_hn))``), then walks the steps in reverse with one product and five pointwise
  passes each, and computes ``dW_hh`` and the input side's gradients as one product each
  over all steps.

Anything else (unpacked input, several layers, other dtypes or devices, autocast) takes
``nn.GRU.forward`` itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils.rnn import PackedSequence

from ..ops import linear, linear_product

__all__ = ["PackedGRU", "gru_recurrence"]


def _step_indices(batch_sizes: list[int], reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices into ``cat([out [T, H], h0 [B, H]])``: the state each packed element's step
    starts from (``[T]``), and each row's final state (``[B]``)."""
    b0, offsets, total = batch_sizes[0], [], 0
    for b in batch_sizes:
        offsets.append(total)
        total += b
    prev: list[int] = []
    for t, b in enumerate(batch_sizes):
        if reverse:  # rows that continue come from step t + 1, the new ones start at h0
            nxt = batch_sizes[t + 1] if t + 1 < len(batch_sizes) else 0
            prev += [offsets[t + 1] + i for i in range(nxt)] if nxt else []
            prev += [total + i for i in range(nxt, b)]
        else:
            prev += ([total + i for i in range(b)] if t == 0
                     else [offsets[t - 1] + i for i in range(b)])
    if reverse:
        final = list(range(b0))
    else:
        final = [0] * b0
        for t, b in enumerate(batch_sizes):
            for i in range(b):
                final[i] = offsets[t] + i
    return torch.tensor(prev), torch.tensor(final)


class _GRURecurrence(torch.autograd.Function):
    """One direction of a one-layer GRU over packed, length-sorted rows (the recurrence only:
    the input projection ``gi`` comes in computed)."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hh, batch_sizes, reverse):  # type: ignore[override]
        t_total, three_h = gi.shape
        hid = three_h // 3
        n_steps = len(batch_sizes)
        order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
        out = gi.new_empty(t_total, hid)
        rz = gi.new_empty(t_total, 2 * hid)  # sigmoid gates r, z
        n = gi.new_empty(t_total, hid)  # candidate
        ghn = gi.new_empty(t_total, hid)  # W_hn h + b_hn
        # per-step views, cut once (slicing inside the loop costs more than the arithmetic)
        gi_rz = gi[:, :2 * hid].split(batch_sizes)
        gi_n = gi[:, 2 * hid:].split(batch_sizes)
        rz_t, n_t, ghn_t, out_t = (x.split(batch_sizes) for x in (rz, n, ghn, out))
        r_t = rz[:, :hid].split(batch_sizes)
        z_t = rz[:, hid:].split(batch_sizes)
        if reverse:  # the batch grows: each step starts from the next step's rows and h0's
            state = h0.new_empty(t_total, hid)
            prev_index, final_index = _step_indices(batch_sizes, reverse)
            fresh = prev_index >= t_total
            state[fresh] = h0[prev_index[fresh] - t_total]
            state_t = state.split(batch_sizes)
        for t in order:
            b = batch_sizes[t]
            if reverse:
                hp = state_t[t]
            else:
                hp = h0[:b] if t == 0 else out_t[t - 1][:b]
            gh = linear_product(hp, w_hh, b_hh)  # [b, 3H]
            gh_rz, gh_n = gh.split([2 * hid, hid], dim=1)
            torch.add(gi_rz[t], gh_rz, out=rz_t[t]).sigmoid_()
            ghn_t[t].copy_(gh_n)
            torch.addcmul(gi_n[t], r_t[t], gh_n, out=n_t[t]).tanh_()
            h = out_t[t]
            torch.sub(hp, n_t[t], out=h)
            torch.addcmul(n_t[t], h, z_t[t], out=h)  # h' = (h - n) z + n, PyTorch's order
            if reverse and t > 0:
                state_t[t - 1][:b].copy_(h)
        if not reverse:
            prev_index, final_index = _step_indices(batch_sizes, reverse)
        h_n = (out[:batch_sizes[0]].clone() if reverse
               else torch.cat([out, h0]).index_select(0, final_index))
        ctx.save_for_backward(rz, n, ghn, out, h0, w_hh, prev_index)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.set_materialize_grads(False)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_n):  # type: ignore[override]
        rz, n, ghn, out, h0, w_hh, prev_index = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        hid = n.shape[1]
        h_prev = torch.cat([out, h0]).index_select(0, prev_index)  # [T, H]
        r, z = rz[:, :hid], rz[:, hid:]
        # the step-independent factors of the gates' derivatives, over all steps at once:
        # h' = (h - n) z + n, n = tanh(a_n + r ghn), r = sigmoid(a_r), z = sigmoid(a_z)
        k_z = (h_prev - n).mul_(z).mul_(1.0 - z)  # d h' / d a_z
        k_n = (1.0 - z).mul_(1.0 - n * n)  # d h' / d a_n
        k_r = (1.0 - r).mul_(r).mul_(ghn)  # d a_n / d a_r
        d_gi_n = torch.empty_like(n)
        d_gh = n.new_empty(n.shape[0], 3 * hid)  # d(h W_hh^T + b_hh); its r, z part = d_gi's
        cut = (k_z, k_n, k_r, r, z, d_gi_n, d_gh, d_gh[:, :hid], d_gh[:, hid:2 * hid],
               d_gh[:, 2 * hid:])
        k_z_t, k_n_t, k_r_t, r_t, z_t, dn_t, dgh_t, dr_t, dz_t, dghn_t = (
            x.split(batch_sizes) for x in cut)
        grad_t = grad_out.split(batch_sizes) if grad_out is not None else None
        # the running gradient of each row's state; rows not yet reached hold d h_n
        dh = (grad_h_n.clone() if grad_h_n is not None
              else n.new_zeros(batch_sizes[0], hid))
        order = range(len(batch_sizes)) if reverse else range(len(batch_sizes) - 1, -1, -1)
        for t in order:
            b = batch_sizes[t]
            g = dh[:b]
            if grad_t is not None:
                g.add_(grad_t[t])
            torch.mul(g, k_n_t[t], out=dn_t[t])
            torch.mul(g, k_z_t[t], out=dz_t[t])
            torch.mul(dn_t[t], k_r_t[t], out=dr_t[t])
            torch.mul(dn_t[t], r_t[t], out=dghn_t[t])
            # dh = g z + d_gh W_hh
            torch.addcmul(linear_product(dgh_t[t], w_hh.t()), g, z_t[t], out=g)
        grad_w_hh = linear_product(d_gh.t(), h_prev.t())  # sum over steps of d_gh^T h_prev
        grad_b_hh = d_gh.sum(0)
        d_gi = torch.cat([d_gh[:, :2 * hid], d_gi_n], dim=1)
        # dh now holds d h0 (reverse: each row's last step was where it started)
        return d_gi, dh, grad_w_hh, grad_b_hh, None, None


def gru_recurrence(gi: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
                   batch_sizes: list[int], reverse: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU direction over packed rows sorted by length (longest first).

    Args:
        gi: ``[T, 3H]`` input projections ``x W_ih^T + b_ih`` of the packed data (time-major,
            ``batch_sizes[t]`` rows at step ``t``), gate order r, z, n.
        h0: ``[B, H]`` initial states, rows in the packed (sorted) order; ``B = batch_sizes[0]``.
        w_hh: ``[3H, H]``; b_hh: ``[3H]``.
        reverse: run each sequence from its last element to its first (the backward
            direction of a bidirectional GRU).
    Returns:
        ``(out [T, H], h_n [B, H])``: the state after every packed element, and each row's
        final state. Differentiable (once) in ``gi``, ``h0``, ``w_hh`` and ``b_hh``.
    """
    return _GRURecurrence.apply(gi, h0, w_hh, b_hh, batch_sizes, reverse)


class PackedGRU(nn.GRU):
    """``nn.GRU`` (module docstring): same constructor, parameters and results up to float32
    rounding; a one-layer float32 CPU forward over a ``PackedSequence`` takes the fast path."""

    def _fast(self, input: object) -> bool:
        if not isinstance(input, PackedSequence) or self.num_layers != 1 or not self.bias:
            return False
        data = input.data
        return (data.device.type == "cpu" and data.dtype == torch.float32
                and self.weight_hh_l0.dtype == torch.float32 and self.proj_size == 0
                and not torch.is_autocast_enabled("cpu"))

    def forward(self, input, hx=None):  # type: ignore[override]
        if not self._fast(input):
            return super().forward(input, hx)
        data, batch_sizes, sorted_indices, unsorted_indices = input
        sizes = batch_sizes.tolist()
        dirs = 2 if self.bidirectional else 1
        h = self.hidden_size
        if hx is None:
            hx = data.new_zeros(dirs, sizes[0], h)
        else:
            hx = self.permute_hidden(hx, sorted_indices)
        params = [(self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)]
        if self.bidirectional:
            params.append((self.weight_ih_l0_reverse, self.weight_hh_l0_reverse,
                           self.bias_ih_l0_reverse, self.bias_hh_l0_reverse))
        # every direction's input projection in one product: [T, dirs 3H]
        if dirs == 1:
            gi = linear(data, params[0][0], params[0][2])
        else:
            gi = linear(data, torch.cat([p[0] for p in params]), torch.cat([p[2] for p in params]))
        outs, finals = [], []
        for d, (_, w_hh, _, b_hh) in enumerate(params):
            out, h_n = gru_recurrence(gi[:, 3 * h * d:3 * h * (d + 1)], hx[d], w_hh, b_hh, sizes,
                                      reverse=d == 1)
            outs.append(out)
            finals.append(h_n)
        output = outs[0] if dirs == 1 else torch.cat(outs, dim=-1)
        hidden = torch.stack(finals)
        return (PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
                self.permute_hidden(hidden, unsorted_indices))
