"""The fused GPU kernels, run on the CPU through an emulation of CuPy's ElementwiseKernel.

The kernels in numpyrnn/cells/fused.py are CUDA C bodies that only CuPy can compile, and most
machines that run these tests have no GPU.  What can still be checked here is everything but
the compilation: that each kernel body computes the equations of the generic path, and that the
cells pass the right arrays, in the right order, to the right parameters.  Argument wiring is
where a fused kernel most easily goes wrong, and it is invisible to a review.

``EmulatedKernel`` gives a kernel's body ElementwiseKernel's semantics on NumPy arrays: every
argument broadcast to one shape, outputs full-shaped, one type ``T`` shared by every array
argument (CuPy raises on a mismatch, so does the emulation), statements run in order as if for
each element.  The bodies are plain C expressions over scalars (assignments, ``T`` locals,
``tanh``, ``max``, ``(T)0``), so running each statement over whole arrays is the same
computation.  On a GPU, tests/test_gpu.py checks the real kernels against the same generic path.
"""

import re

import numpy as np
import pytest

import numpyrnn
from conftest import RECURRENT_CASES, RECURRENT_IDS, assert_same_results, recurrent_data, run_recurrent
from numpyrnn import backend, gradcheck
from numpyrnn.cells.fast import fused

CASES = [(getattr(numpyrnn, name), options) for name, options in RECURRENT_CASES]
IDS = RECURRENT_IDS


def _names(params):
    """'T a, T b' → ['a', 'b'] (every parameter of these kernels has the placeholder type T)."""
    names = []
    for p in params.split(","):
        kind, name = p.split()
        assert kind == "T", f"emulation knows only the placeholder type T, got {p!r}"
        names.append(name)
    return names


class EmulatedKernel:
    """CuPy's ElementwiseKernel(in_params, out_params, operation, name), on NumPy arrays."""

    calls = {}                                   # kernel name → times called (which ran, how often)

    def __init__(self, in_params, out_params, operation, name):
        self.inputs, self.outputs, self.name = _names(in_params), _names(out_params), name
        # A bare floating literal is a double in CUDA C: it would make a float32 kernel compute
        # in double (and disagree with the NumPy body's rounding).  Literals must be cast, (T)0.5.
        bare = re.findall(r"(?<!\(T\))(?<![\w.])\d+\.\d*", operation)
        assert not bare, f"{name}: untyped floating literals {bare}; write them as (T)0.5"
        statements = [s.strip() for s in operation.split(";") if s.strip()]
        # C to Python: drop the local declarations' type, cast literals to plain numbers
        self.code = [compile(re.sub(r"\(T\)(\d)", r"\1", re.sub(r"^T\s+", "", s)), name, "exec")
                     for s in statements]

    def __call__(self, *args):
        assert len(args) == len(self.inputs) + len(self.outputs), f"{self.name}: wrong number of arguments"
        ins, outs = args[:len(self.inputs)], args[len(self.inputs):]
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        dtypes = {a.dtype for a in arrays}
        assert len(dtypes) == 1, f"{self.name}: arguments of type T must share one dtype, got {dtypes}"
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        for name, o in zip(self.outputs, outs):
            assert isinstance(o, np.ndarray) and o.shape == shape, f"{self.name}: output {name} must be {shape}"
        env = {name: a for name, a in zip(self.inputs, ins)}
        env.update({name: o.copy() for name, o in zip(self.outputs, outs)})   # outputs may be read
        functions = {"tanh": np.tanh, "max": np.maximum}
        for statement in self.code:
            exec(statement, functions, env)
        for name, o in zip(self.outputs, outs):           # written back only at the end: no
            np.copyto(o, env[name], casting="same_kind")  # element reads another's output
        EmulatedKernel.calls[self.name] = EmulatedKernel.calls.get(self.name, 0) + 1


@pytest.fixture
def fuse(monkeypatch):
    """A function that makes the cells take their fused branch on NumPy arrays, with emulated
    kernels (until the test ends); it returns the count of launches per kernel."""
    def enable():
        monkeypatch.setattr(backend, "fused_enabled", lambda xp: True)
        monkeypatch.setattr(backend, "elementwise_kernel", EmulatedKernel)
        monkeypatch.setattr(fused, "_kernels", {})
        EmulatedKernel.calls.clear()
        return EmulatedKernel.calls
    return enable


@pytest.mark.parametrize("cls,options", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("use_lengths", [False, True])
def test_fused_kernels_compute_what_the_reference_computes(fuse, cls, options, dtype, use_lengths):
    """The fused bodies, emulated, held to the reference (the textbook loop over the step
    functions), as the NumPy bodies of the fast path are."""
    x, dy, lengths, state, dstate = recurrent_data(cls.__name__, dtype, use_lengths)
    reference = run_recurrent(cls.__name__, options, dtype, x, dy, lengths, "cpu", state, dstate,
                              impl="reference")
    launches = fuse()
    emulated = run_recurrent(cls.__name__, options, dtype, x, dy, lengths, "cpu", state, dstate)
    assert launches, "the fused bodies did not run"
    assert_same_results(emulated, reference, {np.float64: 1e-12, np.float32: 1e-5}[dtype])


EXPECTED_KERNELS = {
    "rnn_tanh": {"numpyrnn_rnn_forward_tanh", "numpyrnn_rnn_backward"},
    "rnn_relu": {"numpyrnn_rnn_forward_relu", "numpyrnn_rnn_backward"},
    "lstm": {"numpyrnn_lstm_forward", "numpyrnn_lstm_backward"},
    "gru": {"numpyrnn_gru_forward_after", "numpyrnn_gru_backward_after"},
    "gru_textbook": {"numpyrnn_gru_forward_before_gates", "numpyrnn_gru_forward_before_state",
                     "numpyrnn_gru_backward_before_first", "numpyrnn_gru_backward_before_second"},
}


@pytest.mark.parametrize("case,name", list(zip(CASES, IDS)), ids=IDS)
def test_each_step_is_one_kernel_launch_per_kernel(fuse, case, name):
    """Every step of every direction runs each of its cell's kernels exactly once."""
    cls, options = case
    launches = fuse()
    T, L, D = 7, 2, 2
    m = cls(3, 4, num_layers=L, bidirectional=True, dtype=np.float64, seed=0, **options)
    y, _ = m.forward(np.random.default_rng(0).standard_normal((T, 2, 3)))
    m.backward(np.ones_like(y))
    assert launches == {k: T * L * D for k in EXPECTED_KERNELS[name]}


@pytest.mark.parametrize("cls,options", CASES, ids=IDS)
def test_gradcheck_passes_through_the_fused_kernels(fuse, cls, options):
    launches = fuse()
    m = cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, **options)
    report = gradcheck.check(m, np.random.default_rng(0).standard_normal((5, 2, 3)), lengths=[5, 2])
    assert launches and report.passed, str(report)


def test_the_emulation_refuses_what_cupy_refuses():
    k = EmulatedKernel("T a, T b", "T c", "c = a + b", "add")
    c = np.empty((2, 3), np.float32)
    with pytest.raises(AssertionError, match="share one dtype"):
        k(np.ones((2, 3), np.float32), np.ones((2, 3), np.float64), c)
    with pytest.raises(AssertionError, match="output c must be"):
        k(np.ones((2, 3)), np.ones((4, 2, 3)), np.empty((2, 3)))
    k(np.ones((2, 3), np.float32), np.float32(2), c)
    assert (c == 3).all()
    with pytest.raises(AssertionError, match=r"untyped floating literals \['0.5'\]"):
        EmulatedKernel("T a", "T h", "h = a * 0.5;", "half")
    EmulatedKernel("T a", "T h", "h = a * (T)0.5;", "half")
    relu = EmulatedKernel("T a", "T h", "T s = a * 2; h = max(s, (T)0);", "relu")
    h = np.empty(3)
    relu(np.array([-1.0, 0.5, 2.0]), h)
    assert h.tolist() == [0.0, 1.0, 4.0]


@pytest.mark.parametrize("cls,options", CASES, ids=IDS)
def test_recurrent_dropout_on_the_gpu_path(fuse, cls, options):
    """With recurrent dropout the RNN's and LSTM's fused bodies still run (the mask acts outside
    them); the GRU runs its NumPy bodies (its kernels take no mask): either way, what the
    reference computes under the same masks."""
    x, dy, lengths, state, dstate = recurrent_data(cls.__name__, np.float64, use_lengths=True)
    dropped = {**options, "recurrent_dropout": 0.5}
    reference = run_recurrent(cls.__name__, dropped, np.float64, x, dy, lengths, "cpu", state, dstate,
                              impl="reference")
    launches = fuse()
    emulated = run_recurrent(cls.__name__, dropped, np.float64, x, dy, lengths, "cpu", state, dstate)
    assert bool(launches) == (cls is not numpyrnn.GRU)
    assert_same_results(emulated, reference, 1e-12)
