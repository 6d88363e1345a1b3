"""numpyrnn against torch.nn.RNN / LSTM / GRU: same weights, same numbers.

Everything a user can observe is compared in float64: outputs, final states, the gradient of
the input, of the initial states and of every parameter, for loss = Σ dy ⊙ y + Σ dstate ⊙ state_n
with random dy and dstate.  Variable lengths are compared with what
pack_padded_sequence(enforce_sorted=False) → module → pad_packed_sequence gives.

The tolerance is 1e-10 in normwise relative error (see conftest.rel_err); observed errors are
around 1e-15.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import DEVICES, back, rel_err

torch = pytest.importorskip("torch", reason="torch is the independent reference for these tests")
import numpyrnn  # noqa: E402

TOL = 1e-10

# name → (numpyrnn class, torch class, options shared by both)
TORCH_VARIANTS = {
    "rnn_tanh": (numpyrnn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (numpyrnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (numpyrnn.LSTM, torch.nn.LSTM, {}),
    "gru": (numpyrnn.GRU, torch.nn.GRU, {}),
}


def torch_twin(ours, torch_cls, options):
    """The torch module with the same configuration and ours's weights."""
    theirs = torch_cls(ours.input_size, ours.hidden_size, num_layers=ours.num_layers,
                       bias=ours.bias, batch_first=ours.batch_first,
                       bidirectional=ours.bidirectional, dtype=torch.float64, **options)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return theirs


def torch_forward_backward(theirs, x, state, lengths, dy, dstate):
    """Run torch forward (packed if lengths) and backward of Σ dy⊙y + Σ dstate⊙state_n."""
    xt = torch.tensor(x, requires_grad=True)
    states = [torch.tensor(s, requires_grad=True) for s in state]
    torch_state = tuple(states) if len(states) == 2 else states[0]
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.as_tensor(lengths), batch_first=theirs.batch_first, enforce_sorted=False)
        out, final = theirs(packed, torch_state)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=theirs.batch_first,
                                                      total_length=x.shape[1 if theirs.batch_first else 0])
    else:
        y, final = theirs(xt, torch_state)
    finals = list(final) if isinstance(final, tuple) else [final]
    loss = (y * torch.from_numpy(dy)).sum()
    for s, d in zip(finals, dstate):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    return (y.detach().numpy(), [s.detach().numpy() for s in finals], xt.grad.numpy(),
            [s.grad.numpy() for s in states], grads)


def compare_with_torch(variant, T, B, I, H, *, layers=1, bidirectional=False, batch_first=False,
                       bias=True, lengths=None, given_state=True, seed=0, device="cpu", impl="fast"):
    """Largest relative error of anything observable, ours (on ``device``, on the path ``impl``)
    against torch."""
    ours_cls, torch_cls, options = TORCH_VARIANTS[variant]
    ours = ours_cls(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                    bidirectional=bidirectional, dtype=np.float64, seed=seed, device=device,
                    impl=impl, **options)
    theirs = torch_twin(ours, torch_cls, options)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    n_states = 2 if variant == "lstm" else 1
    D = 2 if bidirectional else 1
    state = [rng.standard_normal((layers * D, B, H)) if given_state else np.zeros((layers * D, B, H))
             for _ in range(n_states)]
    y, final = ours.forward(x, (tuple(state) if n_states == 2 else state[0]) if given_state else None,
                            lengths)
    finals = [back(s) for s in (list(final) if n_states == 2 else [final])]
    y = back(y)
    dy = rng.standard_normal(y.shape)
    dstate = [rng.standard_normal(s.shape) for s in finals]
    dx, dstate0 = ours.backward(dy, tuple(dstate) if n_states == 2 else dstate[0])
    dx = back(dx)
    dstate0 = [back(d) for d in (list(dstate0) if n_states == 2 else [dstate0])]

    ty, tfinals, tdx, tdstate0, tgrads = torch_forward_backward(theirs, x, state, lengths, dy, dstate)
    errors = {"y": rel_err(y, ty), "dx": rel_err(dx, tdx)}
    for i, name in enumerate(["h", "c"][:n_states]):
        errors[f"{name}_n"] = rel_err(finals[i], tfinals[i])
        errors[f"d{name}0"] = rel_err(dstate0[i], tdstate0[i])
    assert set(ours.grads) == set(tgrads)
    for name, g in ours.grads.items():
        errors[name] = rel_err(back(g), tgrads[name])
    return errors


def assert_close(errors, tol=TOL):
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"{worst}: relative error {errors[worst]:.2e} ≥ {tol:g} (all: {errors})"


# --------------------------------------------------------------------------- single layer (the core)

@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
@given(T=st.integers(1, 9), B=st.integers(1, 5), I=st.integers(1, 6), H=st.integers(1, 6),
       bias=st.booleans(), given_state=st.booleans(), seed=st.integers(0, 2**31))
def test_single_layer_matches_torch(variant, impl, T, B, I, H, bias, given_state, seed):
    assert_close(compare_with_torch(variant, T, B, I, H, bias=bias, given_state=given_state, seed=seed,
                                    impl=impl))


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
def test_long_sequence_matches_torch(variant, impl):
    """100 steps: errors must not grow with the recurrence."""
    assert_close(compare_with_torch(variant, 100, 4, 8, 16, seed=3, impl=impl))


@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
def test_edge_shapes_match_torch(variant):
    """T = 1, B = 1, I = H = 1."""
    for T, B, I, H in [(1, 1, 1, 1), (1, 4, 3, 2), (6, 1, 2, 3), (1, 1, 5, 7)]:
        assert_close(compare_with_torch(variant, T, B, I, H, seed=T + B))


# --------------------------------------------------------------------------- stacks, directions, lengths

@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
@given(T=st.integers(1, 7), B=st.integers(1, 4), I=st.integers(1, 5), H=st.integers(1, 5),
       layers=st.integers(1, 3), bidirectional=st.booleans(), batch_first=st.booleans(),
       bias=st.booleans(), use_lengths=st.booleans(), given_state=st.booleans(),
       seed=st.integers(0, 2**31))
def test_stacked_bidirectional_lengths_match_torch(variant, impl, T, B, I, H, layers, bidirectional,
                                                   batch_first, bias, use_lengths, given_state, seed):
    lengths = np.random.default_rng(seed).integers(1, T + 1, size=B) if use_lengths else None
    assert_close(compare_with_torch(variant, T, B, I, H, layers=layers, bidirectional=bidirectional,
                                    batch_first=batch_first, bias=bias, lengths=lengths,
                                    given_state=given_state, seed=seed, impl=impl))


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_every_configuration_with_lengths_matches_torch(variant, layers, bidirectional, batch_first, device,
                                                        impl):
    """The grid the layers issue names: every cell × layers 1–3 × both directions × batch_first,
    with unsorted lengths that include 1 and T (numpyrnn on each device and path, torch on the
    CPU)."""
    lengths = np.array([5, 1, 3, 5, 2])
    assert_close(compare_with_torch(variant, 5, 5, 3, 4, layers=layers, bidirectional=bidirectional,
                                    batch_first=batch_first, lengths=lengths, seed=layers, device=device,
                                    impl=impl))


@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
def test_unbatched_input_matches_torch(variant):
    ours_cls, torch_cls, options = TORCH_VARIANTS[variant]
    ours = ours_cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1, **options)
    theirs = torch_twin(ours, torch_cls, options)
    x = np.random.default_rng(0).standard_normal((6, 3))
    y, final = ours.forward(x)
    ty, tfinal = theirs(torch.from_numpy(x))
    assert y.shape == tuple(ty.shape) == (6, 8)
    assert rel_err(y, ty.detach().numpy()) < TOL
    for s, ts in zip(final if isinstance(final, tuple) else [final],
                     tfinal if isinstance(tfinal, tuple) else [tfinal]):
        assert s.shape == tuple(ts.shape) == (4, 4)
        assert rel_err(s, ts.detach().numpy()) < TOL


@pytest.mark.parametrize("variant", sorted(TORCH_VARIANTS))
def test_float32_matches_torch_float32(variant):
    """In float32 both sides round differently; agreement to 1e-5 is what float32 allows."""
    ours_cls, torch_cls, options = TORCH_VARIANTS[variant]
    ours = ours_cls(5, 6, num_layers=2, dtype=np.float32, seed=2, **options)
    theirs = torch_cls(5, 6, num_layers=2, **options)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((20, 3, 5)).astype(np.float32)
    y, _ = ours.forward(x)
    ty, _ = theirs(torch.from_numpy(x))
    assert y.dtype == np.float32
    assert rel_err(y, ty.detach().numpy()) < 1e-5
