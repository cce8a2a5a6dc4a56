"""The evaluation protocol: schedule, micro-batching exactness, determinism, seeds, the random-real baseline."""
import torch
import torch.nn.functional as F

from elfkit import data, evaluate, models, seeding, train


def test_micro_batched_gradient_equals_full_batch():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    x, y = torch.randn(60, 1, 28, 28), torch.randint(0, 10, (60,))
    F.cross_entropy(net(x), y).backward()
    full = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    for xc, yc in zip(x.split(train.CPU_MICRO_BATCH), y.split(train.CPU_MICRO_BATCH)):
        (F.cross_entropy(net(xc), yc, reduction="sum") / len(y)).backward()
    for a, p in zip(full, net.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6, rtol=1e-4)


def test_lr_schedule_decays_once_after_half_and_rebuilds_optimiser(monkeypatch):
    made = []
    real = train._sgd

    def spy(model, lr, momentum, wd):
        made.append(lr)
        return real(model, lr, momentum, wd)

    monkeypatch.setattr(train, "_sgd", spy)
    d = data.synthetic(n_train=4, n_test=2)
    steps = []
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    net.register_forward_hook(lambda m, i, o: steps.append(1) if m.training else None)
    train.train_and_eval(net, d.x_train, d.y_train, d.x_test, d.y_test, epochs=6, g=seeding.generator(0),
                         batch_size=256, dsa_strategy=None)
    assert made == [0.01, 0.01 * 0.1]                      # rebuilt once (momentum reset), lr x0.1
    assert len(steps) == 7 * 2                              # E+1 epochs, 40 images in micro-batches of 25


def test_train_and_eval_is_deterministic_from_seed():
    d = data.synthetic(n_train=5, n_test=5)

    def once(seed):
        with seeding.forked(seed):
            net = models.create("ConvNetW32", 1, 10, (28, 28))
        train.train_and_eval(net, d.x_train, d.y_train, d.x_test, d.y_test, epochs=3, g=seeding.generator(seed),
                             dsa_strategy="color_crop_cutout_flip_scale_rotate")
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    assert torch.equal(once(1), once(1))
    assert not torch.equal(once(1), once(2))


def test_accuracy_is_batch_independent():
    torch.manual_seed(0)
    net = models.create("ConvNetW32", 1, 10, (28, 28))
    x, y = torch.randn(70, 1, 28, 28), torch.randint(0, 10, (70,))
    assert train.accuracy(net, x, y, 7) == train.accuracy(net, x, y, 256)
    assert train.accuracy(net, x, y) == (net.eval()(x).argmax(1) == y).sum().item() / len(y)


def test_evaluate_synset_records_and_seeds():
    d = data.synthetic(n_train=8, n_test=4)
    syn = evaluate.random_real(d, 2, seed=0)
    recs = evaluate.evaluate_synset(syn, d, ["ConvNetW32", "MLP"], n_models=2, seed=5, epochs=2)
    assert [(r["eval_arch"], r["model_seed"]) for r in recs] == [("ConvNetW32", 5), ("ConvNetW32", 6), ("MLP", 5),
                                                                 ("MLP", 6)]
    assert all(r["metric"] == "test_acc" and 0 <= r["value"] <= 1 for r in recs)
    again = evaluate.evaluate_synset(syn, d, ["ConvNetW32", "MLP"], n_models=2, seed=5, epochs=2)
    assert recs == again


def test_random_real_is_class_major_real_images():
    d = data.synthetic(n_train=8, n_test=2)
    s = evaluate.random_real(d, 3, seed=1)
    assert s.labels.tolist() == [c for c in range(10) for _ in range(3)]
    for img, lab in zip(s.images, s.labels):
        hits = (d.x_train == img).flatten(1).all(1).nonzero().flatten()
        assert len(hits) == 1 and d.y_train[hits[0]] == lab
    assert torch.equal(s.images, evaluate.random_real(d, 3, seed=1).images)
