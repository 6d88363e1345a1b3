"""BLAS threads (issue 33): the policy in force where the work runs, the user's setting winning,
and speed verdicts a busy machine cannot decide.  Nothing here is timed: the tests read the
thread count threadpoolctl reports inside the loops, and give the claims recorded loads."""

import importlib.util
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import numpyrnn
from numpyrnn import backend, cli, machine, tasks, train
from numpyrnn.cells.fast import fused
from numpyrnn.experiments import gradflow
from numpyrnn.experiments.claims import claims

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "cells", "coupled.py")
FULL = backend.blas_threads_now()         # the BLAS's own choice here, before any region
needs_cores = pytest.mark.skipif(FULL < 2, reason="the BLAS runs one thread here: nothing for a policy to change")


@pytest.fixture(autouse=True)
def policy_as_shipped(monkeypatch):
    """Each test starts from the default setting, with no BLAS variable in the environment."""
    for name in backend.BLAS_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    previous = backend.set_threads("auto")
    yield
    backend.set_threads(previous)
    assert backend.blas_threads_now() == FULL        # whatever a test did, the BLAS is as it was


@pytest.fixture
def loop_threads(monkeypatch):
    """The BLAS threads at every step of the fast paths' loops, as threadpoolctl reads them."""
    seen = []
    choose = fused.choose

    def recording(xp, body, name):
        chosen = choose(xp, body, name)

        def step(*args, **kwargs):
            seen.append(backend.blas_threads_now())
            return chosen(*args, **kwargs)
        return step

    monkeypatch.setattr(fused, "choose", recording)
    return seen


def _layer_pass(cell, impl="fast"):
    layer = {"rnn": numpyrnn.RNN, "lstm": numpyrnn.LSTM, "gru": numpyrnn.GRU}[cell](3, 8, seed=0, impl=impl)
    x = np.random.default_rng(0).standard_normal((5, 4, 3)).astype(np.float32)
    y, _ = layer.forward(x)
    layer.backward(np.ones_like(y))


@needs_cores
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_fast_loops_run_on_one_blas_thread(cell, loop_threads):
    _layer_pass(cell)
    assert len(loop_threads) == 2 * 5 and set(loop_threads) == {1}     # every step, forward and backward
    assert backend.blas_threads_now() == FULL                            # and the BLAS as it was after


@needs_cores
def test_a_training_run_and_a_cell_of_ones_own_run_on_one_thread(loop_threads):
    task = tasks.make("adding", seq_len=5, seed=0, train_size=64, val_size=16, test_size=16)
    trainer, _ = train.setup(task, "gru", hidden=4, batch_size=16, progress=False)
    trainer.fit(steps=2)
    assert loop_threads and set(loop_threads) == {1}

    seen = []
    spec = importlib.util.spec_from_file_location("coupled_for_threads", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Watched(module.Coupled):                     # a cell of the user's, on the generic loop
        name = "watched_coupled"

        def step_forward(self, x_t, state, params):
            seen.append(backend.blas_threads_now())
            return super().step_forward(x_t, state, params)

    layer = numpyrnn.Recurrent(Watched(), 3, 4, seed=0)
    seen.clear()                                       # (the layer's probe of the cell ran outside a region)
    layer.forward(np.ones((6, 2, 3), np.float32))
    assert layer.loop.kind == "generic" and seen == [1] * 6


@needs_cores
def test_only_a_product_of_wide_flop_gets_every_thread(monkeypatch):
    seen = []
    matmul = np.matmul
    monkeypatch.setattr(np, "matmul", lambda *a, **k: seen.append(backend.blas_threads_now()) or matmul(*a, **k))
    a, b = np.ones((64, 32)), np.ones((32, 16))
    flop = 2 * 64 * 32 * 16
    with backend.thread_policy():
        monkeypatch.setattr(backend, "WIDE_FLOP", flop + 1)
        backend.matmul(a, b)                               # one operation short: the loop's one thread
        monkeypatch.setattr(backend, "WIDE_FLOP", flop)
        backend.matmul(a, b)                               # at the threshold: every thread
        after = backend.blas_threads_now()
    assert seen == [1, FULL] and after == 1
    backend.matmul(a, b)                                   # outside a region: untouched
    assert seen[-1] == FULL


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 40), st.integers(1, 40), st.integers(1, 40), st.booleans())
def test_backend_matmul_is_the_product_whatever_the_threads(batch, m, k, n, wide):
    rng = np.random.default_rng(m * k * n)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((batch, k, n))
    old = backend.WIDE_FLOP
    backend.WIDE_FLOP = 0 if wide else old
    try:
        with backend.thread_policy():
            out = np.empty((batch, m, n))
            got = backend.matmul(a, b, out=out)
    finally:
        backend.WIDE_FLOP = old
    assert got is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


@needs_cores
def test_the_users_setting_wins(monkeypatch, loop_threads):
    numpyrnn.set_threads(2)                                # the API (and --threads)
    _layer_pass("lstm")
    assert set(loop_threads) == {2} and backend.thread_setting()["source"] == "set_threads / --threads"
    numpyrnn.set_threads("auto")
    loop_threads.clear()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")       # the environment: left as it is
    _layer_pass("lstm")
    assert set(loop_threads) == {FULL} and "OPENBLAS_NUM_THREADS=2 (left as set)" in machine.threads_text()
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    loop_threads.clear()
    with numpyrnn.threads(1):                              # the context manager, and back after it
        _layer_pass("lstm")
    assert set(loop_threads) == {1} and backend.thread_setting()["setting"] == "auto"


@needs_cores
def test_a_limit_the_user_set_at_run_time_is_kept(monkeypatch, loop_threads):
    # As if the library had chosen 2·FULL threads by itself and the user had limited it to FULL
    # with threadpoolctl around the call: numpyrnn keeps the user's FULL.
    with threadpool_limits(limits=FULL, user_api="blas"):
        monkeypatch.setattr(backend._blas, "full", {k: 2 * FULL for k in backend._blas.full})
        _layer_pass("rnn")
    monkeypatch.undo()
    assert set(loop_threads) == {FULL}


def test_set_threads_refuses_what_is_not_a_count():
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="threads must be 'auto' or a whole number ≥ 1, got"):
            numpyrnn.set_threads(bad)


def test_the_command_line_takes_threads(tmp_path, capsys):
    assert cli.main(["compare", "--task", "adding", "--cells", "rnn", "--seeds", "1", "--steps", "2", "--seq-len", "3",
                     "--hidden", "2", "--quiet", "--threads", "2", "--out", str(tmp_path / "c")]) == 0
    results = json.loads((tmp_path / "c" / "results.json").read_text())
    assert results["machine"]["threads"] == "2 (set_threads / --threads)"
    assert backend.thread_setting()["setting"] == "auto"       # the command's choice ends with it
    capsys.readouterr()
    assert cli.main(["gradcheck", "--threads", "0"]) == 2
    assert "argument --threads: expected auto or a whole number ≥ 1, got '0'" in capsys.readouterr().err


@needs_cores
def test_the_spectrum_runs_on_one_thread(monkeypatch):
    seen = []
    eigvalsh = np.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a: seen.append(backend.blas_threads_now()) or eigvalsh(a))
    task = tasks.make("adding", seq_len=4, seed=0, train_size=8, val_size=4, test_size=4)
    model = task.make_model("lstm", hidden_size=3, seed=0)
    gradflow.jacobian_norms(model, task.examples("test", np.arange(4)).inputs)
    assert seen == [1] * 4


# --------------------------------------------------------------------------- the load, recorded and judged

def _load(share=1.0, after=0.5, cores=2):
    return {"load_before": 0.4, "load_after": after, "wall_seconds": 10.0, "cpu_seconds": 10 * share,
            "cpu_share": share, "cores": cores}


def _results(lstm_loads, gru_loads, seconds=(2.0, 1.0)):
    def cell(loads, s):
        return {"hidden": 10, "parameters": 400, "summary": {"activation_mib": 1.0},
                "runs": [{"seconds_per_epoch": s * (1 + 0.01 * k), "train_seconds": 10 * s, "load": load}
                         for k, load in enumerate(loads)]}
    return {"higher_is_better": True, "metric": "accuracy", "settings": {"total_steps": 10},
            "cells": {"lstm": cell(lstm_loads, seconds[0]), "gru": cell(gru_loads, seconds[1])}}


def _speed(results):
    return next(r for r in claims(results) if r["claim"] == "the GRU is faster")


def test_a_busy_machine_withholds_the_speed_verdict():
    quiet = [_load(), _load(0.95), _load(0.99, after=2.4)]            # one busy process beside, a core spare
    row = _speed(_results(quiet, quiet))
    assert row["verdict"] == "supported" and row["load"]["busy"] is None and row["load"]["max_load_after"] == 2.4
    loaded = [_load(), _load(after=2.9), _load()]                      # more threads wanted than cores
    row = _speed(_results(quiet, loaded))
    assert row["verdict"] == "undecided: the machine was busy (load 2.9 on 2 cores)"
    assert row["value"] == pytest.approx(2.0 / 1.0 * 1.01 / 1.01) and row["interval"] == [row["value"]] * 2
    starved = [_load(), _load(0.67), _load()]                          # a run waited for a core
    assert _speed(_results(starved, quiet))["verdict"] == "undecided: the machine was busy (a run had the CPU 67 % of its time)"
    both = _speed(_results([_load(0.5, after=3.0)] * 3, quiet))["verdict"]
    assert both == "undecided: the machine was busy (load 3.0 on 2 cores, a run had the CPU 50 % of its time)"
    old = _results(quiet, quiet)                                       # results from before loads were kept
    for run in old["cells"]["lstm"]["runs"]:
        del run["load"]
    assert _speed(old)["verdict"] == "supported" and "load" not in _speed(old)


def test_busy_reason_reads_the_thresholds():
    assert machine.busy_reason([_load(after=2.5)]) is None                  # cores + half a thread: not yet
    assert machine.busy_reason([_load(after=2.51)]) == "load 2.5 on 2 cores"
    assert machine.busy_reason([_load(share=0.8)]) is None
    assert machine.busy_reason([_load(share=0.79, cores=1, after=None)]) == "a run had the CPU 79 % of its time"
    assert machine.busy_reason([_load(after=1.6, cores=1)]) == "load 1.6 on 1 core"
    assert machine.busy_reason([]) is None
    assert machine.busy_reason([{**_load(share=0.3), "device": "gpu"}]) is None   # waiting for the GPU is no load


def test_compare_goes_round_robin_and_records_the_load():
    from numpyrnn.experiments.compare import compare, load_note

    lines = []
    results = compare("adding", cells=("lstm", "gru"), seeds=2, steps=2, hidden=2, task_options={"seq_len": 3},
                      progress=False, log=lines.append)
    order = [line.split(":")[0] for line in lines if " seed " in line]
    assert order == ["lstm seed 0", "gru seed 0", "lstm seed 1", "gru seed 1"]   # each seed of every cell in turn
    for cell in ("lstm", "gru"):
        for run in results["cells"][cell]["runs"]:
            load = run["load"]
            assert set(load) == {"load_before", "load_after", "wall_seconds", "cpu_seconds", "cpu_share", "cores",
                                 "device"}
            assert 0 < load["cpu_seconds"] and load["cpu_share"] == load["cpu_seconds"] / load["wall_seconds"]
    assert results["load"]["cores"] == machine.usable_cores()
    assert results["machine"]["threads"] == machine.threads_text()
    assert "load" in _speed(results) and load_note(results).startswith("The machine while it ran: load average ")


def test_round_robin_trains_each_run_as_before():
    """The order of the runs changes nothing in them: a run alone gives the same numbers."""
    from numpyrnn.experiments.compare import compare

    options = dict(steps=3, hidden=3, task_options={"seq_len": 4}, progress=False)
    both = compare("adding", cells=("lstm", "gru"), seeds=2, **options)
    alone = compare("adding", cells=("gru",), seeds=2, **options)
    assert [r["test_items"] for r in both["cells"]["gru"]["runs"]] == [r["test_items"] for r in alone["cells"]["gru"]["runs"]]


def test_the_tools_busy_process_ends_with_its_parent(tmp_path):
    """tools/busy_machine.py's busy process (gemm_threads.py uses the same) ends when the tool that
    started it is killed, however it is killed: no process is left spinning."""
    import signal
    import subprocess
    import sys
    import time

    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
    parent = subprocess.Popen([sys.executable, "-c", "import busy_machine, time; p = busy_machine.busy_process(); "
                               "print(p.pid, flush=True); time.sleep(60)"], cwd=tools, stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 5
    state = "R"
    while time.time() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            break
        time.sleep(0.05)
    assert state in ("Z", "X", "gone"), f"the busy process {pid} still runs ({state})"


@needs_cores
def test_a_stream_steps_on_one_thread_and_a_loop_can_hold_the_policy_once():
    """Each step of a stream runs under the policy (its products on one thread); ``with
    model.stream()`` holds it for the loop, so the threads are not set and restored at every step,
    and gives them back after."""
    model = numpyrnn.SequenceRegressor("gru", input_size=3, hidden_size=5, per_step=True, seed=0)
    seen = []
    step = model.rnn._step

    def recording(*args):
        seen.append(backend.blas_threads_now())
        return step(*args)

    model.rnn.__dict__["_step"] = recording
    stream = model.stream()
    stream.step(np.zeros(3))
    assert seen == [1] and backend.blas_threads_now() == FULL
    with model.stream() as held:
        held.step(np.zeros(3))
        assert backend.blas_threads_now() == 1 and backend.region_threads() == 1
    assert seen == [1, 1] and backend.blas_threads_now() == FULL and backend.region_threads() is None


def test_the_tools_pair_starts_its_two_timed_runs_together(tmp_path, monkeypatch):
    """tools/busy_machine.py --pair: the two runs at once build their work, say they are ready and
    start timing only on the word, and each run's ratio is its time at once over the mean of its
    times alone before and after (the plain NumPy loop, a few hundred steps, stands in)."""
    import types

    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
    monkeypatch.syspath_prepend(tools)
    import busy_machine

    started = []
    real_start = busy_machine.start

    def start(*args, **extra):
        extra["steps"] = 300
        started.append(extra)
        return real_start(*args, **extra)

    monkeypatch.setattr(busy_machine, "start", start)
    args = types.SimpleNamespace(rounds=1, variants=[], pair_control=True, pair_cell="rnn", pair_epochs=2,
                                 baseline=None)
    lines = []
    (record,) = busy_machine.measure_pair(args, lines.append)
    assert [bool(s.get("wait")) for s in started] == [False, False, True, True, False, False]
    assert all(s["epochs"] == 2 for s in started)
    assert record["variant"] == "numpy-loop" and record["epochs"] == 2
    for i in range(2):
        assert record["alone"][i] == pytest.approx((record["before"][i] + record["after"][i]) / 2)
        assert record["ratios"][i] == pytest.approx(record["together"][i] / record["alone"][i])
    assert record["wall_ratio"] == pytest.approx(max(record["together"]) / sum(record["alone"]))
    assert "pair round 0 numpy-loop" in lines[0]
    report = busy_machine.report([], [record], types.SimpleNamespace(**vars(args), jobs=[], cells=[], torch=False,
                                                                     conditions=[]))
    assert "numpy-loop: " in report and "median of every run" in report


def test_a_pair_worker_whose_conductor_is_gone_does_not_train(monkeypatch):
    """A worker of tools/busy_machine.py --pair that waits for the word ends, without training,
    when its conductor's end of the pipe closes (the conductor killed or failed)."""
    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
    monkeypatch.syspath_prepend(tools)
    import busy_machine

    worker = busy_machine.start("sentiment", "rnn", "auto", None, "numpy-loop", wait=True, steps=100_000_000)
    assert worker.stdout.readline().strip() == "ready"
    worker.stdin.close()                      # no word will come
    assert worker.wait(timeout=30) == 1
    assert worker.stdout.read() == ""         # it printed no timing: it did not train
