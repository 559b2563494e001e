"""Plain float64 references of every preset, written from the papers' equations.

Shares no code with ``ablate.cells``: it knows only the documented parameter names and row
orders (LSTM and sLSTM: i, f, z, o; GRU: r, z, h; minGRU: z, h) and recomputes each step
literally, in sequence (the parallel scan's oracle too).
"""

from __future__ import annotations

import torch
from torch import Tensor


def sigma(x: Tensor) -> Tensor:
    return 1.0 / (1.0 + torch.exp(-x))


def identity(x: Tensor) -> Tensor:
    return x


# Greff's and Jozefowicz's LSTM variants, as the papers state them.
#   gates: which gates exist; peep: peepholes (i, f see c_{t-1}; o sees c_t);
#   g/k: block-input and output activations; cifg: f = 1 - i; fgr: full gate recurrence.
LSTM_VARIANTS = {
    "vanilla": dict(gates="ifo", peep=True, g=torch.tanh, k=torch.tanh),
    "nig": dict(gates="fo", peep=True, g=torch.tanh, k=torch.tanh),
    "nfg": dict(gates="io", peep=True, g=torch.tanh, k=torch.tanh),
    "nog": dict(gates="if", peep=True, g=torch.tanh, k=torch.tanh),
    "niaf": dict(gates="ifo", peep=True, g=identity, k=torch.tanh),
    "noaf": dict(gates="ifo", peep=True, g=torch.tanh, k=identity),
    "np": dict(gates="ifo", peep=False, g=torch.tanh, k=torch.tanh),
    "cifg": dict(gates="io", peep=True, g=torch.tanh, k=torch.tanh, cifg=True),
    "fgr": dict(gates="ifo", peep=True, g=torch.tanh, k=torch.tanh, fgr=True),
    "lstm": dict(gates="ifo", peep=False, g=torch.tanh, k=torch.tanh),
    "lstm_b": dict(gates="ifo", peep=False, g=torch.tanh, k=torch.tanh),
    "lstm_f": dict(gates="io", peep=False, g=torch.tanh, k=torch.tanh),
    "lstm_i": dict(gates="fo", peep=False, g=torch.tanh, k=torch.tanh),
    "lstm_o": dict(gates="if", peep=False, g=torch.tanh, k=torch.tanh),
}
GRU_VARIANTS = ("gru", "gru_torch", "mut1", "mut2", "mut3")
MODERN = ("mingru", "minlstm", "indrnn", "slstm")
ALL = sorted([*LSTM_VARIANTS, *GRU_VARIANTS, "tanh", *MODERN])


def _rows(w: Tensor, names: str, n: int) -> dict[str, Tensor]:
    return {name: w[k * n : (k + 1) * n] for k, name in enumerate(names)}


def lstm_direction(name: str, p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    """The final state is (h, c), and for FGR (h, c, a): a the last i, f, o side by side."""
    v = LSTM_VARIANTS[name]
    gates = v["gates"]
    cifg, fgr = v.get("cifg", False), v.get("fgr", False)
    # Stacked rows: the parametrized gates and the block input z, in the order i, f, z, o.
    order = "".join(r for r in "ifzo" if r == "z" or r in gates)
    W = _rows(p["weight_ih"], order, n)
    R = _rows(p["weight_hh"], order, n)
    b = _rows(p["bias"], order, n)
    B = xs[0].shape[0]
    h = torch.zeros(B, n, dtype=torch.float64)
    c = torch.zeros(B, n, dtype=torch.float64)
    prev = {g: torch.zeros(B, n, dtype=torch.float64) for g in gates}  # FGR: zero at t = 0
    if start is not None:
        h, c = start[0], start[1]
        if fgr:
            prev = {g: start[2][:, k * n : (k + 1) * n] for k, g in enumerate(gates)}
    if fgr:
        G = {
            (to, frm): p["weight_gg"][
                gates.index(to) * n : (gates.index(to) + 1) * n,
                gates.index(frm) * n : (gates.index(frm) + 1) * n,
            ]
            for to in gates
            for frm in gates
        }
    outs = []
    for x in xs:

        def pre(g: str, x: Tensor = x, h: Tensor = h, prev: dict = prev) -> Tensor:
            s = x @ W[g].T + h @ R[g].T + b[g]
            if fgr:
                for frm in gates:
                    s = s + prev[frm] @ G[(g, frm)].T
            return s

        z = v["g"](x @ W["z"].T + h @ R["z"].T + b["z"])
        if "i" in gates:
            i = sigma(pre("i") + (p["peephole_input"] * c if v["peep"] else 0.0))
        else:
            i = 1.0
        if cifg:
            f = 1.0 - i
        elif "f" in gates:
            f = sigma(pre("f") + (p["peephole_forget"] * c if v["peep"] else 0.0))
        else:
            f = 1.0
        c = z * i + c * f
        if "o" in gates:
            o = sigma(pre("o") + (p["peephole_output"] * c if v["peep"] else 0.0))
        else:
            o = 1.0
        h = v["k"](c) * o
        if fgr:
            prev = {"i": i, "f": f, "o": o}
        outs.append(h)
    if fgr:
        return outs, (h, c, torch.cat([prev[g] for g in gates], dim=1))
    return outs, (h, c)


def tanh_direction(p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    h = torch.zeros(xs[0].shape[0], n, dtype=torch.float64) if start is None else start[0]
    outs = []
    for x in xs:
        h = torch.tanh(x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"])
        outs.append(h)
    return outs, (h,)


def gru_direction(name: str, p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    b = _rows(p["bias"], "rzh", n)
    h = torch.zeros(xs[0].shape[0], n, dtype=torch.float64) if start is None else start[0]
    outs = []

    def raw(x: Tensor) -> Tensor:
        """MUT1/MUT2's raw x: x itself when M == N, as the paper writes it; only when the
        sizes differ does the learned projection P x stand in (decided by the sizes, not by
        whether the layout has P)."""
        return x if x.shape[1] == n else x @ p["weight_xp"].T

    for x in xs:
        if name == "gru":
            W, R = _rows(p["weight_ih"], "rzh", n), _rows(p["weight_hh"], "rzh", n)
            r = sigma(x @ W["r"].T + h @ R["r"].T + b["r"])
            z = sigma(x @ W["z"].T + h @ R["z"].T + b["z"])
            hh = torch.tanh(x @ W["h"].T + (r * h) @ R["h"].T + b["h"])
            h = z * h + (1 - z) * hh
        elif name == "gru_torch":
            W, R = _rows(p["weight_ih"], "rzh", n), _rows(p["weight_hh"], "rzh", n)
            r = sigma(x @ W["r"].T + h @ R["r"].T + b["r"])
            z = sigma(x @ W["z"].T + h @ R["z"].T + b["z"])
            hh = torch.tanh(x @ W["h"].T + b["h"] + r * (h @ R["h"].T + p["bias_hn"]))
            h = (1 - z) * hh + z * h
        elif name == "mut1":
            W, R = _rows(p["weight_ih"], "rz", n), _rows(p["weight_hh"], "rh", n)
            z = sigma(x @ W["z"].T + b["z"])
            r = sigma(x @ W["r"].T + h @ R["r"].T + b["r"])
            h = torch.tanh((r * h) @ R["h"].T + torch.tanh(raw(x)) + b["h"]) * z + h * (1 - z)
        elif name == "mut2":
            W, R = _rows(p["weight_ih"], "zh", n), _rows(p["weight_hh"], "rzh", n)
            z = sigma(x @ W["z"].T + h @ R["z"].T + b["z"])
            r = sigma(raw(x) + h @ R["r"].T + b["r"])
            h = torch.tanh((r * h) @ R["h"].T + x @ W["h"].T + b["h"]) * z + h * (1 - z)
        elif name == "mut3":
            W, R = _rows(p["weight_ih"], "rzh", n), _rows(p["weight_hh"], "rh", n)
            Rz = p["weight_th"]
            z = sigma(x @ W["z"].T + torch.tanh(h) @ Rz.T + b["z"])
            r = sigma(x @ W["r"].T + h @ R["r"].T + b["r"])
            h = torch.tanh((r * h) @ R["h"].T + x @ W["h"].T + b["h"]) * z + h * (1 - z)
        else:
            raise KeyError(name)
        outs.append(h)
    return outs, (h,)


def mingru_direction(p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    """Feng et al. 2024: z = s(W_z x + b_z); h~ = W_h x + b_h; h_t = (1 - z) h_{t-1} + z h~."""
    W, b = _rows(p["weight_ih"], "zh", n), _rows(p["bias"], "zh", n)
    h = torch.zeros(xs[0].shape[0], n, dtype=torch.float64) if start is None else start[0]
    outs = []
    for x in xs:
        z = sigma(x @ W["z"].T + b["z"])
        hh = x @ W["h"].T + b["h"]
        h = (1 - z) * h + z * hh
        outs.append(h)
    return outs, (h,)


def minlstm_direction(p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    """Feng et al. 2024: f' = f / (f + i), i' = i / (f + i), h_t = f' h_{t-1} + i' h~. As an
    LSTM-family cell the state is (h, c), with c = h."""
    W, b = _rows(p["weight_ih"], "ifz", n), _rows(p["bias"], "ifz", n)
    h = torch.zeros(xs[0].shape[0], n, dtype=torch.float64) if start is None else start[1]
    outs = []
    for x in xs:
        f = sigma(x @ W["f"].T + b["f"])
        i = sigma(x @ W["i"].T + b["i"])
        hh = x @ W["z"].T + b["z"]
        h = f / (f + i) * h + i / (f + i) * hh
        outs.append(h)
    return outs, (h, h)


def indrnn_direction(p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    """Li et al. 2018: h_t = relu(W x_t + u * h_{t-1} + b), u a vector."""
    h = torch.zeros(xs[0].shape[0], n, dtype=torch.float64) if start is None else start[0]
    outs = []
    for x in xs:
        h = torch.relu(x @ p["weight_ih"].T + p["weight_hh"] * h + p["bias"])
        outs.append(h)
    return outs, (h,)


def slstm_direction(
    p: dict[str, Tensor], xs: list[Tensor], n: int, start=None, exp_forget: bool = False
):
    """Beck et al. 2024, the sLSTM: state (h, c, n, m), zeros at the start; R block-diagonal,
    weight_hh holding each gate's heads' square blocks stacked."""
    W, b = _rows(p["weight_ih"], "ifzo", n), _rows(p["bias"], "ifzo", n)
    size = p["weight_hh"].shape[1]
    R = {g: torch.block_diag(*r.split(size)) for g, r in _rows(p["weight_hh"], "ifzo", n).items()}
    B = xs[0].shape[0]
    if start is None:
        h, c, nn, m = (torch.zeros(B, n, dtype=torch.float64) for _ in range(4))
    else:
        h, c, nn, m = start
    outs = []
    for x in xs:
        i_pre, f_pre, z_pre, o_pre = (x @ W[g].T + h @ R[g].T + b[g] for g in "ifzo")
        log_i = i_pre
        log_f = f_pre if exp_forget else torch.log(sigma(f_pre))
        m_new = torch.maximum(log_f + m, log_i)
        i = torch.exp(log_i - m_new)
        f = torch.exp(log_f + m - m_new)
        c = f * c + i * torch.tanh(z_pre)
        nn = f * nn + i
        h = sigma(o_pre) * c / nn
        m = m_new
        outs.append(h)
    return outs, (h, c, nn, m)


def direction(name: str, p: dict[str, Tensor], xs: list[Tensor], n: int, start=None):
    """``slstm_exp``: the sLSTM with an exponential forget gate (a spec option, no preset)."""
    if name == "mingru":
        return mingru_direction(p, xs, n, start)
    if name == "minlstm":
        return minlstm_direction(p, xs, n, start)
    if name == "indrnn":
        return indrnn_direction(p, xs, n, start)
    if name in ("slstm", "slstm_exp"):
        return slstm_direction(p, xs, n, start, exp_forget=name == "slstm_exp")
    if name in LSTM_VARIANTS:
        return lstm_direction(name, p, xs, n, start)
    if name == "tanh":
        return tanh_direction(p, xs, n, start)
    return gru_direction(name, p, xs, n, start)


def run(
    name: str,
    layer_params: list[dict[str, Tensor]],
    x: Tensor,
    n: int,
    layers: int,
    bidirectional: bool,
    initial: list[Tensor] | None = None,
):
    """x: (T, B, M); ``initial``: the stacked initial states (default zeros). Returns output
    (T, B, D*N) and the stacked final states."""
    dirs = 2 if bidirectional else 1
    xs = list(x.unbind(0))
    finals: list[list[Tensor]] = []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            p = layer_params[layer * dirs + d]
            seq = xs if d == 0 else xs[::-1]
            k = layer * dirs + d
            start = None if initial is None else [s[k] for s in initial]
            o, final = direction(name, p, seq, n, start)
            outs.append(o if d == 0 else o[::-1])
            finals.append(list(final))
        xs = [torch.cat([o[t] for o in outs], dim=1) for t in range(len(xs))]
    out = torch.stack(xs)
    states = [torch.stack([f[k] for f in finals]) for k in range(len(finals[0]))]
    return out, states
