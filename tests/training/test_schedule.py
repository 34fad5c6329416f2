from serkit.training.schedule import warmup_linear_decay


def test_warmup_then_linear_decay_to_zero():
    total, warmup = 100, 10
    values = [warmup_linear_decay(step, total, warmup) for step in range(total + 1)]
    assert values[0] == 0.1 and values[9] == 1.0  # ramps up to the peak by the end of warm-up
    assert all(a <= b for a, b in zip(values[:10], values[1:10]))
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # then never rises
    assert values[-1] == 0.0 and abs(values[55] - 0.5) < 1e-9


def test_no_warmup_starts_at_peak():
    assert warmup_linear_decay(0, 50, 0) == 1.0
