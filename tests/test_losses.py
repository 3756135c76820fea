"""The loss functions against values computed by hand from paper eq. (1)-(5)."""

import math

import pytest
import torch
import torch.nn.functional as F

from lrcbert import losses


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_angular_distance_bounds():
    x = t([1.0, 0.0])
    assert losses.angular_distance(x, x).item() == pytest.approx(0.0)
    assert losses.angular_distance(x, -x).item() == pytest.approx(2.0)
    assert losses.angular_distance(x, t([0.0, 3.0])).item() == pytest.approx(1.0)


def test_cos_nce_lower_bound_identical_positive_opposite_negative():
    s = t([1.0, 0.0])
    assert losses.cos_nce(s, s.clone(), -s.view(1, 1, 2)).item() == pytest.approx(0.0)


def test_cos_nce_upper_bound_opposite_positive_identical_negative():
    # g(z_t, z_s) = 2 and g(n, z_s) = 0: (2 - (0 - 2)) / 2 + 2 = 4
    s = t([1.0, 0.0])
    assert losses.cos_nce(s, -s, s.view(1, 1, 2)).item() == pytest.approx(4.0)


def test_cos_nce_hand_computed_two_negatives():
    s, z_t = t([1.0, 0.0]), t([0.0, 1.0])  # g_pos = 1
    negs = t([[1.0, 1.0], [-1.0, 0.0]]).view(1, 2, 2)  # g = 1 - 1/sqrt(2), 2
    g1 = 1 - 1 / math.sqrt(2)
    expected = ((2 - (g1 - 1)) + (2 - (2 - 1))) / (2 * 2) + 1
    assert losses.cos_nce(s, z_t, negs).item() == pytest.approx(expected)


def test_cos_nce_is_the_batch_mean():
    s = t([1.0, 0.0], [1.0, 0.0])
    z_t = t([1.0, 0.0], [-1.0, 0.0])
    negs = torch.stack([-s[0:1], s[1:2]])
    assert losses.cos_nce(s, z_t, negs).item() == pytest.approx((0.0 + 4.0) / 2)


def test_cos_nce_gradient_pulls_to_teacher_and_pushes_from_negative():
    # s between t = e1 and n = e2; dL/ds = 3/2 dg_pos/ds - 1/2 dg_neg/ds = (-1, 1) by hand
    s = (t([1.0, 1.0]) / math.sqrt(2)).requires_grad_(True)
    loss = losses.cos_nce(s, t([1.0, 0.0]), t([0.0, 1.0]).view(1, 1, 2))
    (grad,) = torch.autograd.grad(loss, s)
    assert torch.allclose(grad, t([-1.0, 1.0]), atol=1e-9)
    descent = -grad
    assert (descent * t([1.0, 0.0])).sum() > 0 and (descent * t([0.0, 1.0])).sum() < 0


def test_cos_nce_invariant_to_rescaling():
    g = torch.Generator().manual_seed(0)
    s, z_t, n = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(4, 3, 8, generator=g)
    base = losses.cos_nce(s, z_t, n)
    assert losses.cos_nce(5.0 * s, 0.1 * z_t, 7.0 * n).item() == pytest.approx(base.item(), rel=1e-5)


def test_in_batch_cos_nce_equals_explicit_negatives():
    g = torch.Generator().manual_seed(1)
    s, z_t = torch.randn(6, 10, generator=g, dtype=torch.float64), torch.randn(6, 10, generator=g, dtype=torch.float64)
    negs = torch.stack([torch.cat([z_t[:b], z_t[b + 1 :]]) for b in range(6)])  # (B, B-1, D)
    assert losses.in_batch_cos_nce(s, z_t).item() == pytest.approx(losses.cos_nce(s, z_t, negs).item(), abs=1e-12)


def test_in_batch_cos_nce_needs_two_samples():
    with pytest.raises(ValueError):
        losses.in_batch_cos_nce(torch.randn(1, 4), torch.randn(1, 4))


def test_flatten_representation_ignores_padding():
    g = torch.Generator().manual_seed(2)
    h_s, h_t = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    base = losses.in_batch_cos_nce(losses.layer_vectors(h_s, mask), losses.layer_vectors(h_t, mask))
    # pad to length 9 with garbage on the padded positions: the loss must not move
    pad = lambda h: torch.cat([h, 100 * torch.randn(3, 4, 4, generator=g)], dim=1)
    mask9 = torch.cat([mask, torch.zeros(3, 4, dtype=mask.dtype)], dim=1)
    h_s9, h_t9 = pad(h_s), pad(h_t)
    h_s9[1, 3:5], h_t9[2, 2:5] = 50.0, -50.0  # garbage inside the original padding too
    h_s[1, 3:5], h_t[2, 2:5] = 50.0, -50.0
    padded = losses.in_batch_cos_nce(losses.layer_vectors(h_s9, mask9), losses.layer_vectors(h_t9, mask9))
    assert padded.item() == pytest.approx(base.item(), abs=1e-6)


def test_mean_and_cls_representations():
    h = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(losses.layer_vectors(h, mask, "cls"), h[:, 0])
    assert torch.allclose(losses.layer_vectors(h, mask, "mean")[0], h[0, :2].mean(0))
    assert torch.allclose(losses.layer_vectors(h, mask, "mean")[1], h[1].mean(0))


def test_masked_mse_zero_for_identical_and_grows_with_distance():
    h = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert losses.masked_mse(h, h.clone(), mask).item() == 0.0
    assert losses.masked_mse(h + 1.0, h, mask).item() == pytest.approx(1.0)
    assert losses.masked_mse(h + 2.0, h, mask).item() == pytest.approx(4.0)
    # padded positions never count
    h2 = h.clone()
    h2[0, 3] += 1e3
    assert losses.masked_mse(h2, h, mask).item() == 0.0


def test_soft_loss_is_kl_teacher_to_student_at_temperature():
    ys, yt, tau = t([1.0, 2.0, 0.5]), t([0.2, -1.0, 3.0]), 1.1
    p_t, p_s = torch.softmax(yt / tau, -1), torch.softmax(ys / tau, -1)
    expected = (p_t * (p_t / p_s).log()).sum().item()
    assert losses.soft_loss(ys, yt, tau).item() == pytest.approx(expected)
    assert losses.soft_loss(ys, yt, tau, t2=True).item() == pytest.approx(expected * tau * tau)
    assert losses.soft_loss(yt, yt, tau).item() == pytest.approx(0.0, abs=1e-12)


def test_hard_loss_one_hot_and_tempered_targets():
    ys, y, tau = t([1.0, 2.0, 0.5], [0.0, 0.0, 3.0]), torch.tensor([1, 2]), 1.1
    log_p = torch.log_softmax(ys, -1)
    one_hot = -(log_p[0, 1] + log_p[1, 2]).item() / 2
    assert losses.hard_loss(ys, y, tau, "one_hot").item() == pytest.approx(one_hot)
    q = torch.softmax(F.one_hot(y, 3).double() / tau, -1)
    tempered = -(q * log_p).sum(-1).mean().item()
    assert losses.hard_loss(ys, y, tau, "tempered").item() == pytest.approx(tempered)
    assert tempered != pytest.approx(one_hot)


def test_regression_losses_are_mse():
    pred, teacher, gold = t([1.0], [2.0]), t([1.5], [2.0]), torch.tensor([0.0, 4.0])
    assert losses.soft_loss(pred, teacher, 1.1, regression=True).item() == pytest.approx((0.25 + 0) / 2)
    assert losses.hard_loss(pred, gold, regression=True).item() == pytest.approx((1 + 4) / 2)


def per_position_reference(h_s, h_t, mask):
    """COS-NCE of the per-position reading written out with loops: for each sample b and each of its non-padding
    positions p, eq. (1) with the positive t_{b,p} and the negatives t_{j,p} of every other sample j (a padded
    position of j is a zero vector: cosine 0), averaged over b's positions, then over the batch."""
    b_size = h_s.shape[0]
    per_sample = []
    for b in range(b_size):
        terms = []
        for p in range(h_s.shape[1]):
            if not mask[b, p]:
                continue
            s = h_s[b, p]
            t_pos = h_t[b, p] * mask[b, p]
            g_pos = 1 - F.cosine_similarity(s, t_pos, dim=0, eps=1e-8)
            g_neg = [
                1 - F.cosine_similarity(s, h_t[j, p] * mask[j, p], dim=0, eps=1e-8) for j in range(b_size) if j != b
            ]
            k = len(g_neg)
            terms.append(sum((2 - (gn - g_pos)) for gn in g_neg) / (2 * k) + g_pos)
        per_sample.append(sum(terms) / len(terms))
    return sum(per_sample) / b_size


def test_per_position_cos_nce_equals_the_loop_over_positions():
    from lrcbert.objective import per_position_cos_nce

    g = torch.Generator().manual_seed(3)
    h_s, h_t = (
        torch.randn(4, 6, 5, generator=g, dtype=torch.float64),
        torch.randn(4, 6, 5, generator=g, dtype=torch.float64),
    )
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    got = per_position_cos_nce(h_s, h_t, mask)
    assert got.item() == pytest.approx(per_position_reference(h_s, h_t, mask).item(), abs=1e-12)
    # garbage at padded positions changes nothing (they are zeroed on both sides)
    h_s2, h_t2 = h_s.clone(), h_t.clone()
    h_s2[mask == 0], h_t2[mask == 0] = 77.0, -33.0
    assert per_position_cos_nce(h_s2, h_t2, mask).item() == pytest.approx(got.item(), abs=1e-12)


def test_per_position_cos_nce_hand_computed():
    # two samples, one position each, 2-d: s_0 = (1,0), s_1 = (0,1); t_0 = (1,0), t_1 = (-1,0)
    h_s = t([[1.0, 0.0]], [[0.0, 1.0]])
    h_t = t([[1.0, 0.0]], [[-1.0, 0.0]])
    mask = torch.ones(2, 1, dtype=torch.long)
    from lrcbert.objective import per_position_cos_nce

    # b=0: g_pos = 0, g_neg = g(t_1, s_0) = 2 -> (2 - 2)/2 + 0 = 0; b=1: g_pos = 1, g_neg = g(t_0, s_1) = 1
    # -> (2 - 0)/2 + 1 = 2; mean 1
    assert per_position_cos_nce(h_s, h_t, mask).item() == pytest.approx(1.0, abs=1e-12)


def test_per_position_differs_from_flatten_when_positions_disagree():
    # flatten compares whole l x d matrices: opposite halves can cancel; per position they cannot
    h_s = t([[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]])
    h_t = t([[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [-1.0, 0.0]])
    mask = torch.ones(2, 2, dtype=torch.long)
    d = losses.per_position_distances(h_s, h_t, mask)
    assert d[0, 0].item() == pytest.approx(1.0)  # positions at cos 1 and -1: mean distance (0 + 2) / 2
    flat = losses.angular_distance(losses.layer_vectors(h_s, mask)[0], losses.layer_vectors(h_t, mask)[0])
    assert flat.item() == pytest.approx(1.0)  # the flattened cosine is 0 here too: equal only by construction
    h_t[0, 1] = t([0.0, 1.0])[0] * 5  # a longer vector at one position changes the flattened cosine only
    assert losses.per_position_distances(h_s, h_t, mask)[0, 0].item() == pytest.approx(0.0, abs=1e-12)
    assert losses.angular_distance(losses.layer_vectors(h_s, mask)[0], losses.layer_vectors(h_t, mask)[0]).item() > 0.1
