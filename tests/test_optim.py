"""Optimizers, clipping and schedules against torch.optim, to 1e-12 in float64."""

import math

import numpy as np
import pytest

import numpyrnn
from numpyrnn import optim

CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.001}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    ("adam", {"lr": 1e-2, "amsgrad": True}),
    ("adamw", {"lr": 1e-2}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("rmsprop", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.9, "centered": True, "weight_decay": 0.01}),
    ("rmsprop", {"lr": 1e-3, "centered": True}),
]
TORCH_NAMES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


def model_and_grads(seed=0, steps=20):
    m = numpyrnn.GRU(3, 4, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    grads = [{k: rng.standard_normal(v.shape) for k, v in m.params.items()} for _ in range(steps)]
    return m, grads


@pytest.mark.parametrize("name,kwargs", CONFIGS)
def test_same_parameters_as_torch_after_20_steps(name, kwargs):
    torch = pytest.importorskip("torch")
    m, grads = model_and_grads()
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in m.params.items()}
    topt = getattr(torch.optim, TORCH_NAMES[name])(list(tparams.values()), **kwargs)
    opt = optim.make(name, m, **kwargs)
    for g in grads:
        for k in m.grads:
            m.grads[k] = g[k]
            tparams[k].grad = torch.tensor(g[k])
        opt.step()
        topt.step()
    for k, p in m.params.items():
        ref = tparams[k].detach().numpy()
        assert np.abs(p - ref).max() <= 1e-12 * max(1.0, np.abs(ref).max()), k


def test_clip_grad_norm_matches_torch_and_returns_the_norm_before():
    torch = pytest.importorskip("torch")
    m, grads = model_and_grads(steps=1)
    for k in m.grads:
        m.grads[k] = grads[0][k] * 3
    tensors = [torch.tensor(grads[0][k] * 3, requires_grad=True) for k in m.grads]
    for t in tensors:
        t.grad = t.detach().clone()
    norm = optim.clip_grad_norm(m.grads, 1.5)
    tnorm = torch.nn.utils.clip_grad_norm_(tensors, 1.5)
    assert abs(norm - tnorm.item()) < 1e-12 * norm
    for g, t in zip(m.grads.values(), tensors):
        assert np.abs(g - t.grad.numpy()).max() < 1e-14
    assert abs(optim.grad_norm(m.grads) - 1.5) < 1e-5
    assert optim.clip_grad_norm(m.grads, 100.0) == pytest.approx(optim.grad_norm(m.grads))   # no-op under the bound


def test_clip_grad_norm_with_nonfinite_gradients_reports_and_leaves_them():
    m, _ = model_and_grads(steps=1)
    m.grads["weight_hh_l0"][0, 0] = np.inf
    assert math.isinf(optim.clip_grad_norm(m.grads, 1.0))
    assert np.isinf(m.grads["weight_hh_l0"][0, 0])


def test_clip_grad_value():
    m, grads = model_and_grads(steps=1)
    for k in m.grads:
        m.grads[k] = grads[0][k]
    optim.clip_grad_value(m.grads, 0.5)
    assert all(np.abs(g).max() <= 0.5 for g in m.grads.values())
    assert any(np.abs(g).max() == 0.5 for g in m.grads.values())


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_schedules_match_torch(schedule):
    torch = pytest.importorskip("torch")
    m, _ = model_and_grads(steps=1)
    opt = optim.SGD(m, lr=0.3)
    p = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.3)
    if schedule == "step":
        ours, theirs = optim.StepLR(opt, 7, gamma=0.5), torch.optim.lr_scheduler.StepLR(topt, 7, gamma=0.5)
    else:
        ours = optim.CosineAnnealingLR(opt, 25, eta_min=0.01)
        theirs = torch.optim.lr_scheduler.CosineAnnealingLR(topt, 25, eta_min=0.01)
    for _ in range(60):
        topt.step()
        ours.step()
        theirs.step()
        assert abs(opt.lr - theirs.get_last_lr()[0]) < 1e-12


def test_state_dict_round_trip_continues_identically():
    """An optimizer restored from its state continues exactly as the original."""
    m1, grads = model_and_grads()
    m2, _ = model_and_grads()
    a = optim.Adam(m1, lr=1e-2, amsgrad=True)
    for g in grads[:10]:
        for k in m1.grads:
            m1.grads[k] = g[k]
        a.step()
    m2.load_state_dict(m1.state_dict())
    b = optim.Adam(m2, lr=1e-2, amsgrad=True)
    b.load_state_dict(a.state_dict())
    for g in grads[10:]:
        for m, opt in ((m1, a), (m2, b)):
            for k in m.grads:
                m.grads[k] = g[k]
            opt.step()
    assert all(np.array_equal(m1.params[k], m2.params[k]) for k in m1.params)


def test_optimizer_errors():
    m, _ = model_and_grads(steps=1)
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw, adagrad, rmsprop, got 'lbfgs'"):
        optim.make("lbfgs", m)
    with pytest.raises(ValueError, match="lr must be ≥ 0.0, got -1"):
        optim.SGD(m, lr=-1)
    with pytest.raises(ValueError, match="lr must be a finite number, got nan"):
        optim.Adam(m, lr=float("nan"))
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\), got 1.0"):
        optim.Adam(m, betas=(0.9, 1.0))
    for make in (optim.Adam, optim.AdamW, optim.Adagrad, optim.RMSprop):
        with pytest.raises(ValueError, match=r"eps must be > 0 \(it keeps g / \(√v \+ ε\) finite where a gradient is zero\), got 0"):
            make(m, eps=0.0)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        optim.SGD(m, nesterov=True)
    with pytest.raises(TypeError, match="an optimizer needs a model with params and grads"):
        optim.SGD([1, 2])
    opt = optim.Adam(m)
    with pytest.raises(KeyError, match="does not belong to this model"):
        opt.load_state_dict({"step": 1, "nope/exp_avg": np.zeros(3)})


def test_clipping_takes_the_module_as_torch_users_hand_it_over():
    """clip_grad_norm(model, ...) (torch's habit: the model's parameters) is clip_grad_norm(model.grads, ...)."""
    m, grads = model_and_grads(steps=1)
    twin, _ = model_and_grads(steps=1)
    for k in m.grads:
        m.grads[k] = twin.grads[k] = grads[0][k] * 3
    assert optim.grad_norm(m) == optim.grad_norm(m.grads)
    assert optim.clip_grad_norm(m, 1.0) == optim.clip_grad_norm(twin.grads, 1.0)
    optim.clip_grad_value(m, 0.1)
    optim.clip_grad_value(twin.grads, 0.1)
    assert all(np.array_equal(m.grads[k], twin.grads[k]) for k in m.grads)
    for bad in ([np.ones(3)], {"w": [1.0, 2.0]}, "grads"):
        with pytest.raises(TypeError, match=r"grads must be a module or a dict of name → gradient array \(model.grads\), "
                                            rf"got {type(bad).__name__}"):
            optim.clip_grad_norm(bad, 1.0)


def test_make_names_a_setting_the_optimizer_does_not_have():
    m, _ = model_and_grads(steps=1)
    with pytest.raises(TypeError, match="adam takes no setting momentum; its settings are lr, betas, eps, "
                                        "weight_decay, amsgrad"):
        optim.make("adam", m, momentum=0.9)
