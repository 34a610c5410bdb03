import torch

from repro.models.universal import UniversalConfig, UniversalTransformer, act_step
from repro.seeding import torch_seed


def test_act_weights_of_every_position_sum_to_one():
    for bias in (-4.0, 0.0, 4.0):  # long, medium and one-step pondering
        with torch_seed(0):
            model = UniversalTransformer(UniversalConfig(vocab=3, max_len=12, classes=2, width=16, heads=2,
                                                         mlp_hidden=32, max_steps=6))
        torch.nn.init.constant_(model.halting.bias, bias)
        _, aux = model(torch.randint(0, 3, (5, 12)))
        assert torch.allclose(aux["halting_mass"], torch.ones(5, 13), atol=1e-6)
        assert ((aux["ponder_steps"] >= 1) & (aux["ponder_steps"] <= 6)).all()
        assert (aux["penalty"] > 0).all()


def test_act_step_by_hand():
    mass, running = torch.tensor([0.0, 0.5, 0.95]), torch.tensor([True, True, True])
    weight, still = act_step(mass, running, torch.tensor([0.3, 0.6, 0.1]), eps=0.01, last=False)
    # Position 0 keeps running with weight p; 1 and 2 cross 1 - eps and take the remainder.
    assert torch.allclose(weight, torch.tensor([0.3, 0.5, 0.05]))
    assert still.tolist() == [True, False, False]
    weight, still = act_step(torch.tensor([0.2]), torch.tensor([True]), torch.tensor([0.1]), eps=0.01, last=True)
    assert torch.allclose(weight, torch.tensor([0.8])) and not still.any()


def test_ponder_cost_gradient_reaches_the_halting_unit():
    with torch_seed(0):
        model = UniversalTransformer(UniversalConfig(vocab=3, max_len=8, classes=2, width=16, heads=2,
                                                     mlp_hidden=32, max_steps=4))
    torch.nn.init.constant_(model.halting.bias, -1.0)
    _, aux = model(torch.randint(0, 3, (4, 8)))
    aux["penalty"].sum().backward()
    assert model.halting.weight.grad.abs().sum() > 0
