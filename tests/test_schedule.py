"""The optimisation schedule: make_optimizer's Adam/AdamW steps (hseg/train.py) and LrFactor's learning rate
per step (hseg/schedule.py)."""
import math

import pytest
import torch

from hseg.schedule import LrFactor
from hseg.settings.train import train_config

VARIANT = "unet-resnet34-scratch"


def schedule_cfg(params, **sched):
    params["train"]["scheduler"].update(sched)
    params["train"].update(epochs=3, lr=0.01)
    return train_config(params, VARIANT, 42)


def test_warmup_cosine_rises_linearly_then_reaches_the_floor_at_the_last_step(params):
    cfg = schedule_cfg(params, name="warmup_cosine", warmup_epochs=1, eta_min=1e-4)
    f = LrFactor(cfg, steps_per_epoch=10)
    assert [f(s) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert f(10) == pytest.approx(1.0)
    assert f(29) == pytest.approx(1e-4 / 0.01)  # the last of 30 steps uses eta_min
    assert f(20) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 10 / 19)))
    assert all(f(s) >= f(s + 1) for s in range(10, 29))


def test_cosine_restarts_matches_torch_warm_restarts_stepped_per_batch(params):
    cfg = schedule_cfg(params, name="cosine_restarts", T_0=2, eta_min=1e-5)
    ours = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    ours_s = torch.optim.lr_scheduler.LambdaLR(ours, LrFactor(cfg, steps_per_epoch=7))
    theirs_s = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs, T_0=2, eta_min=1e-5)
    for step in range(21):
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        ours_s.step()
        theirs_s.step((step + 1) / 7)


@pytest.mark.parametrize("kind", ["adamw", "adam"])
def test_optimizer_steps_match_adam_by_hand(params, kind):
    """Two steps of make_optimizer's (fused) Adam/AdamW against the update rule written out:
    m, v running moments with bias correction; AdamW decays the weights apart from the gradient,
    Adam adds weight_decay * p to the gradient."""
    from hseg.train import make_optimizer
    params["train"].update(optimizer=kind, lr=0.1, weight_decay=0.01)
    cfg = train_config(params, VARIANT, 42)
    torch.manual_seed(8)
    net = torch.nn.Linear(3, 2)
    p0 = [t.detach().clone().double() for t in net.parameters()]
    opt = make_optimizer(cfg, net)
    grads = [[torch.randn_like(t).double() for t in p0] for _ in range(2)]
    ps, m, v = p0, [0 * t for t in p0], [0 * t for t in p0]
    b1, b2, eps, lr, wd = 0.9, 0.999, 1e-8, 0.1, 0.01
    for k, g in enumerate(grads, start=1):
        for t, gt in zip(net.parameters(), g):
            t.grad = gt.float()
        opt.step()
        g = [gt + wd * pt for gt, pt in zip(g, ps)] if kind == "adam" else g
        base = [pt * (1 - lr * wd) for pt in ps] if kind == "adamw" else ps
        m = [b1 * mt + (1 - b1) * gt for mt, gt in zip(m, g)]
        v = [b2 * vt + (1 - b2) * gt * gt for vt, gt in zip(v, g)]
        ps = [bt - lr * (mt / (1 - b1 ** k)) / ((vt / (1 - b2 ** k)).sqrt() + eps)
              for bt, mt, vt in zip(base, m, v)]
        for t, want in zip(net.parameters(), ps):
            assert torch.allclose(t.detach().double(), want, atol=1e-6)
    assert opt.defaults["fused"]


def test_fused_optimizer_matches_the_default_loop_on_a_channels_last_network_and_resumes_fused(params):
    """The fused kernel walks raw storage: channels_last conv weights (as the pipeline's) must get
    the default loop's update, and a resumed optimizer must stay fused."""
    from hseg.train import make_optimizer
    cfg = train_config(params, VARIANT, 42)
    torch.manual_seed(3)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1))
            .to(memory_format=torch.channels_last) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = make_optimizer(cfg, nets[0])
    plain = torch.optim.AdamW(nets[1].parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        for net, opt in zip(nets, (fused, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(*(net.parameters() for net in nets)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    resumed = make_optimizer(cfg, nets[0])
    resumed.load_state_dict(fused.state_dict())
    assert all(group["fused"] for group in resumed.param_groups)
