"""Window plans cover the input exactly, with the configured window and hop."""

from __future__ import annotations

import numpy as np
import pytest

from serkit.errors import ConfigError
from serkit.inference.windows import check_windowing, plan_spans, weighted_mean


@pytest.mark.parametrize("frames", [1, 399, 160000, 160001, 239999, 240000, 400123, 9600000])
@pytest.mark.parametrize("window, hop", [(10.0, 5.0), (10.0, 10.0), (3.0, 0.5), (2.5, 1.7)])
def test_plan_covers_the_input_with_windows_at_every_hop(frames, window, hop):
    rate = 16000
    spans = plan_spans(frames, rate, window, hop)
    window_frames, hop_frames = round(window * rate), round(hop * rate)
    if frames <= window_frames:
        assert spans == [(0, frames)]
        return
    starts = [first for first, _ in spans]
    assert starts == [k * hop_frames for k in range(len(spans))]
    assert spans[-1][1] == frames  # the last window ends at the end
    assert all(stop - first == window_frames for first, stop in spans[:-1])
    assert spans[-2][1] < frames  # no window after one that already reached the end
    assert spans[-1][1] - spans[-1][0] <= window_frames
    covered = np.zeros(frames, dtype=bool)
    for first, stop in spans:
        covered[first:stop] = True
    assert covered.all()


def test_input_of_exactly_one_window_is_not_windowed():
    assert plan_spans(160000, 16000, 10.0, 5.0) == [(0, 160000)]
    assert len(plan_spans(160001, 16000, 10.0, 5.0)) == 2


@pytest.mark.parametrize("window, hop", [(0.0, 1.0), (-1.0, 1.0), (10.0, 0.0), (10.0, 11.0), (float("inf"), 1.0)])
def test_bad_window_settings(window, hop):
    with pytest.raises(ConfigError):
        check_windowing(window, hop)


def test_weighted_mean_weights_by_duration():
    values = np.array([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]])
    result = weighted_mean(values, [10.0, 10.0, 5.0])
    np.testing.assert_allclose(result, (10 * values[0] + 10 * values[1] + 5 * values[2]) / 25)
    assert result.sum() == pytest.approx(1.0)
