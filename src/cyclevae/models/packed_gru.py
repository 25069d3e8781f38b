"""``nn.GRU`` over packed sequences with the recurrence's backward written out (float32 CPU).

PyTorch's CPU GRU over a :class:`~torch.nn.utils.rnn.PackedSequence` runs a cell of ~15
separate operators per time step and leaves the backward to autograd, which replays ~20 small
nodes per step and computes the recurrent weight gradient as one small product per step
(oneDNN's fused RNN kernels cover the LSTM only). :class:`PackedGRU` is an ``nn.GRU`` (same
parameters, state dict and results up to float32 rounding) whose one-layer forward over a
packed float32 CPU sequence:

- projects every direction's inputs with one product (``ops.linear``, oneDNN), ``[T, D 3H]``;
- runs the recurrence itself, one ``[b_t, H] x [H, 3H]`` product and a few pointwise passes
  per step, keeping the gates it needs for the backward;
- in the backward, walks the steps in reverse with the gates' derivatives written out
  (Cho et al., 2014; PyTorch's gate order r, z, n and ``n = tanh(W_in x + b_in + r (W_hn h +
  b_hn))``), and computes ``dW_hh`` and the input side's gradients as one product each over
  all steps.

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


def _offsets(batch_sizes: list[int]) -> list[int]:
    out, total = [], 0
    for b in batch_sizes:
        out.append(total)
        total += b
    return out


class _GRURecurrence(torch.autograd.Function):
    """One direction of a one-layer GRU over packed, length-sorted rows (the recurrence only:
    the input projection ``gi`` comes in computed)."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hh, batch_sizes, reverse):  # type: ignore[override]
        t_total, three_h = gi.shape
        hidden = three_h // 3
        steps = range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes))
        offsets = _offsets(batch_sizes)
        out = gi.new_empty(t_total, hidden)
        rz = gi.new_empty(t_total, 2 * hidden)  # sigmoid gates r, z
        n = gi.new_empty(t_total, hidden)  # candidate
        ghn = gi.new_empty(t_total, hidden)  # W_hn h + b_hn
        h_prev = gi.new_empty(t_total, hidden)  # the state each step starts from
        state = h0.clone() if reverse else None  # reverse: the batch grows, rows start at h0
        h_n = h0.new_empty(h0.shape)
        prev_rows = None
        for t in steps:
            b = batch_sizes[t]
            rows = slice(offsets[t], offsets[t] + b)
            if reverse:
                hp = state[:b]  # type: ignore[index]
            else:
                hp = h0[:b] if prev_rows is None else out[prev_rows.start:prev_rows.start + b]
            h_prev[rows] = hp
            gh = linear_product(hp, w_hh, b_hh)  # [b, 3H]
            torch.sigmoid(torch.add(gi[rows, :2 * hidden], gh[:, :2 * hidden]), out=rz[rows])
            ghn[rows] = gh[:, 2 * hidden:]
            r, z = rz[rows, :hidden], rz[rows, hidden:]
            torch.tanh(torch.addcmul(gi[rows, 2 * hidden:], r, gh[:, 2 * hidden:]), out=n[rows])
            nt = n[rows]
            h = out[rows]
            torch.sub(hp, nt, out=h)
            h.mul_(z).add_(nt)  # h' = (h - n) z + n, PyTorch's order
            if reverse:
                state[:b] = h  # type: ignore[index]
            else:
                nxt = batch_sizes[t + 1] if t + 1 < len(batch_sizes) else 0
                if nxt < b:  # rows nxt..b end here
                    h_n[nxt:b] = h[nxt:]
            prev_rows = rows
        if reverse:
            h_n = state
        ctx.save_for_backward(rz, n, ghn, h_prev, w_hh)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.set_materialize_grads(False)
        return out, h_n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_n):  # type: ignore[override]
        rz, n, ghn, h_prev, w_hh = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        hidden = n.shape[1]
        offsets = _offsets(batch_sizes)
        # the running gradient of each row's state; rows not yet reached hold d h_n
        dh = (grad_h_n.clone() if grad_h_n is not None
              else n.new_zeros(batch_sizes[0], hidden))
        d_gi = n.new_empty(n.shape[0], 3 * hidden)
        d_gh = n.new_empty(n.shape[0], 3 * hidden)
        steps = range(len(batch_sizes)) if reverse else range(len(batch_sizes) - 1, -1, -1)
        for t in steps:
            b = batch_sizes[t]
            rows = slice(offsets[t], offsets[t] + b)
            g = dh[:b]
            if grad_out is not None:
                g = g + grad_out[rows]
            r, z = rz[rows, :hidden], rz[rows, hidden:]
            nt = n[rows]
            # h' = (h - n) z + n: dz = g (h - n), dn = g (1 - z), dh = g z
            dz = torch.sub(h_prev[rows], nt).mul_(g)
            dh_prev = torch.mul(g, z)
            dn = torch.sub(g, dh_prev)
            dn_pre = d_gi[rows, 2 * hidden:]
            torch.mul(nt, nt, out=dn_pre).neg_().add_(1.0).mul_(dn)  # tanh' = 1 - n^2
            torch.mul(dn_pre, r, out=d_gh[rows, 2 * hidden:])  # d(W_hn h + b_hn)
            # sigmoid' = s (1 - s): dr_pre = dn_pre ghn r (1 - r), dz_pre = dz z (1 - z)
            rz_t = rz[rows]
            d_rz = d_gi[rows, :2 * hidden]
            torch.sub(rz_t, torch.mul(rz_t, rz_t), out=d_rz)
            d_rz[:, :hidden].mul_(dn_pre).mul_(ghn[rows])
            d_rz[:, hidden:].mul_(dz)
            d_gh[rows, :2 * hidden] = d_rz
            dh_prev.add_(linear_product(d_gh[rows], w_hh.t()))  # + d_gh @ W_hh
            dh[:b] = dh_prev
        grad_w_hh = linear_product(d_gh.t(), h_prev.t())  # sum over steps of d_gh^T h_prev
        grad_b_hh = d_gh.sum(0)
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
