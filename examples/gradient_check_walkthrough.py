"""Checking a backward pass you wrote yourself, step by step.

    python examples/gradient_check_walkthrough.py

1. Write one step of a vanilla RNN, forward and backward, by hand.
2. Check one gradient entry by central differences, by hand.
3. Check every entry of every input with numpyrnn.gradcheck.check_fn.
4. Put in the classic bug (forgetting tanh's derivative) and watch the check name it.
5. Check numpyrnn's own LSTM layer the same way.
"""

import numpy as np

import numpyrnn
from numpyrnn import gradcheck


# 1. One step: h = tanh(x Wx^T + h_prev Wh^T + b), written the way you would on paper.
def rnn_step_forward(x, h_prev, Wx, Wh, b):
    a = x @ Wx.T + h_prev @ Wh.T + b
    h = np.tanh(a)
    return h, (x, h_prev, Wx, Wh, h)           # (output, cache): numpyrnn's convention


def rnn_step_backward(dh, cache):
    x, h_prev, Wx, Wh, h = cache
    da = dh * (1 - h ** 2)                      # tanh'(a) = 1 − tanh²(a)
    return da @ Wx, da @ Wh, da.T @ x, da.T @ h_prev, da.sum(axis=0)   # dx, dh_prev, dWx, dWh, db


def buggy_step_backward(dh, cache):
    x, h_prev, Wx, Wh, h = cache
    da = dh                                     # the bug: tanh's derivative forgotten
    return da @ Wx, da @ Wh, da.T @ x, da.T @ h_prev, da.sum(axis=0)


def main():
    rng = np.random.default_rng(0)
    B, I, H = 4, 3, 5
    inputs = {"x": rng.standard_normal((B, I)), "h_prev": rng.standard_normal((B, H)),
              "Wx": rng.standard_normal((H, I)) * 0.5, "Wh": rng.standard_normal((H, H)) * 0.5,
              "b": rng.standard_normal(H) * 0.1}

    # 2. One entry by hand: L = Σ P ⊙ h for a fixed random P, so ∂L/∂h = P.
    P = rng.standard_normal((B, H))
    h, cache = rnn_step_forward(**inputs)
    analytic = rnn_step_backward(P, cache)[2][1, 2]            # ∂L/∂Wx[1, 2]
    eps, Wx = 1e-6, inputs["Wx"].copy()
    plus, minus = Wx.copy(), Wx.copy()
    plus[1, 2] += eps
    minus[1, 2] -= eps
    f = lambda W: float((P * rnn_step_forward(inputs["x"], inputs["h_prev"], W, inputs["Wh"], inputs["b"])[0]).sum())  # noqa: E731
    numeric = (f(plus) - f(minus)) / (2 * eps)
    print(f"2. ∂L/∂Wx[1,2]: backward {analytic:+.10f}, central difference {numeric:+.10f}, "
          f"relative error {abs(analytic - numeric) / max(abs(analytic), abs(numeric)):.1e}\n")

    # 3. Every entry of every input.
    report = gradcheck.check_fn(rnn_step_forward, rnn_step_backward, inputs)
    print("3.", report, "\n")

    # 4. The bug.
    report = gradcheck.check_fn(rnn_step_forward, buggy_step_backward, inputs)
    print("4.", report)
    print(f"   The check fails on {', '.join(report.failed)}: everything downstream of da is wrong, "
          "and b's gradient is da summed.\n")

    # 5. A whole layer: every parameter, the input and the initial state.
    lstm = numpyrnn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    report = gradcheck.check(lstm, rng.standard_normal((6, 2, 3)), lengths=[6, 3])
    print("5.", report)


if __name__ == "__main__":
    main()
