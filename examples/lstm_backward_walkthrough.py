# %% [markdown]
# # The LSTM step backward, one equation at a time
#
# Open this file as a notebook (Jupyter with jupytext, or VS Code: each `# %%` is a cell) or run
# it as a script: `python examples/lstm_backward_walkthrough.py`.  Beside it, read
# docs/derivations.md §1 (three facts) and §5 (the LSTM).  Each piece of the backward is written
# as a small forward/backward pair and checked against finite differences before the next one
# is built on it; at the end the pieces make the whole step, which the exercise grader marks.

# %%
import types

import numpy as np

from numpyrnn import exercises, gradcheck

rng = np.random.default_rng(0)
B, I, H = 3, 4, 5                       # sequences, input features, hidden units


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def passed(report, what):
    worst = max(r.max_rel_err for r in report.rows)
    print(f"{what}: {'PASSED' if report.passed else 'FAILED'} (worst relative error {worst:.1e})")
    assert report.passed, str(report)


# %% [markdown]
# ## 1. h = o ⊙ tanh(c)
#
# A product (fact 3) of o and tanh(c), and tanh is elementwise (fact 2):
# do = dh ⊙ tanh(c), and dc gains dh ⊙ o ⊙ (1 − tanh²(c)).

# %%
def output_forward(o, c):
    h = o * np.tanh(c)
    return h, (o, c)


def output_backward(dh, cache):
    o, c = cache
    t = np.tanh(c)
    return dh * t, dh * o * (1 - t * t)          # do, dc


passed(gradcheck.check_fn(output_forward, output_backward,
                          {"o": rng.random((B, H)), "c": rng.standard_normal((B, H))}), "h = o ⊙ tanh(c)")

# %% [markdown]
# ## 2. c = f ⊙ c_prev + i ⊙ g
#
# Two products: di = dc ⊙ g, dg = dc ⊙ i, df = dc ⊙ c_prev, dc_prev = dc ⊙ f.  Along the cell
# state the gradient is multiplied by f alone: the path on which it survives long delays.

# %%
def cell_forward(f, c_prev, i, g):
    return f * c_prev + i * g, (f, c_prev, i, g)


def cell_backward(dc, cache):
    f, c_prev, i, g = cache
    return dc * c_prev, dc * f, dc * g, dc * i    # df, dc_prev, di, dg


passed(gradcheck.check_fn(cell_forward, cell_backward,
                          {name: rng.standard_normal((B, H)) for name in ("f", "c_prev", "i", "g")}),
       "c = f ⊙ c_prev + i ⊙ g")

# %% [markdown]
# ## 3. The gates: σ and tanh, through their outputs
#
# Fact 2: σ'(a) = σ(a)(1 − σ(a)) and tanh'(a) = 1 − tanh²(a), both written with the function's
# output, which the forward keeps.  a = [a_i | a_f | a_g | a_o], PyTorch's order.

# %%
def gates_forward(a):
    H = a.shape[1] // 4
    i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    return i, f, g, o, (i, f, g, o)


def gates_backward(di, df, dg, do, cache):
    i, f, g, o = cache
    return (np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=1),)


passed(gradcheck.check_fn(gates_forward, gates_backward, {"a": rng.standard_normal((B, 4 * H))}),
       "the gates")

# %% [markdown]
# ## 4. a = x W_ih^T + b_ih + h_prev W_hh^T + b_hh
#
# Fact 1: dx = da W_ih, dh_prev = da W_hh, dW_ih = da^T x, dW_hh = da^T h_prev, and each bias
# gets Σ_batch da.

# %%
def linear_forward(x, h_prev, w_ih, w_hh, b_ih, b_hh):
    return x @ w_ih.T + b_ih + h_prev @ w_hh.T + b_hh, (x, h_prev, w_ih, w_hh)


def linear_backward(da, cache):
    x, h_prev, w_ih, w_hh = cache
    return da @ w_ih, da @ w_hh, da.T @ x, da.T @ h_prev, da.sum(axis=0), da.sum(axis=0)


inputs = {"x_t": rng.standard_normal((B, I)), "h_prev": rng.standard_normal((B, H)),
          "weight_ih": rng.uniform(-0.5, 0.5, (4 * H, I)), "weight_hh": rng.uniform(-0.5, 0.5, (4 * H, H)),
          "bias_ih": rng.uniform(-0.5, 0.5, 4 * H), "bias_hh": rng.uniform(-0.5, 0.5, 4 * H)}
passed(gradcheck.check_fn(linear_forward, linear_backward, inputs), "the linear map")

# %% [markdown]
# ## 5. The whole step, from the checked pieces
#
# Backward runs the pieces in reverse: 1, 2 (with dc now the total: from step t+1 and from h),
# 3, 4.  The only new line is the sum in dc: fact 3, c reaches the loss through h *and* through
# the next step.

# %%
def step_forward(x_t, h_prev, c_prev, weight_ih, weight_hh, bias_ih, bias_hh):
    a, linear = linear_forward(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)
    i, f, g, o, gates = gates_forward(a)
    c, cell = cell_forward(f, c_prev, i, g)
    h, output = output_forward(o, c)
    return h, c, (linear, gates, cell, output)


def step_backward(dh, dc, cache):
    linear, gates, cell, output = cache
    do, dc_from_h = output_backward(dh, output)
    df, dc_prev, di, dg = cell_backward(dc + dc_from_h, cell)        # every path into c
    (da,) = gates_backward(di, df, dg, do, gates)
    dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh = linear_backward(da, linear)
    return dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh


step_inputs = {"x_t": inputs["x_t"], "h_prev": inputs["h_prev"], "c_prev": rng.standard_normal((B, H)),
               **{k: inputs[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}}
passed(gradcheck.check_fn(step_forward, step_backward, step_inputs), "the whole step")

# %% [markdown]
# ## 6. The exercise, and the grader
#
# `numpyrnn exercise lstm > my_lstm.py` writes the file to fill in; `numpyrnn grade my_lstm.py
# --cell lstm` marks it against numpyrnn's reference, and names the mistake it recognises.  Here
# the functions above go into it; then one mistake is planted (dc_prev without the forget gate)
# to see the grader name it.

# %%
template = exercises.template("lstm")
assert 'raise NotImplementedError("step_backward")' in template
my_lstm = types.ModuleType("my_lstm")              # what a filled-in my_lstm.py would hold
my_lstm.step_forward, my_lstm.step_backward = step_forward, step_backward
report = exercises.grade(my_lstm, "lstm")
print(report)
assert report.passed


# %%
def step_backward_without_f(dh, dc, cache):
    """The same, with a classic slip: dc_prev = dc, the forget gate left out."""
    linear, gates, cell, output = cache
    do, dc_from_h = output_backward(dh, output)
    df, _, di, dg = cell_backward(dc + dc_from_h, cell)
    dc_prev = dc + dc_from_h                                         # should be (dc + dc_from_h) ⊙ f
    (da,) = gates_backward(di, df, dg, do, gates)
    dx_t, dh_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh = linear_backward(da, linear)
    return dx_t, dh_prev, dc_prev, dweight_ih, dweight_hh, dbias_ih, dbias_hh


my_lstm.step_backward = step_backward_without_f
report = exercises.grade(my_lstm, "lstm")
print(report)
assert [d.mistake.key for d in report.diagnoses] == ["dc_prev_without_f"]
