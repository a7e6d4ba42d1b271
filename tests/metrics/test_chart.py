"""Plain-text charts."""

from __future__ import annotations

from aios_tui.metrics.chart import line_chart, sparkline


def test_sparkline_scales_between_low_and_high():
    assert sparkline([0, 50, 100], lo=0, hi=100) == "▁▅█"
    assert sparkline([None, 1.0]) == " ▁"
    assert sparkline(list(range(100)), width=10) == sparkline(list(range(90, 100)))


def test_line_chart_places_points_by_value():
    lines = line_chart({"train loss": [(1, 3.0), (2, 2.0), (3, 1.0)], "eval loss": [(3, 1.5)]},
                       width=30, height=5)
    plot = [l.split("┤" if "┤" in l else "│", 1)[1] for l in lines[:5]]
    assert plot[0].startswith("•")            # the highest loss at the top left
    assert plot[4].rstrip().endswith("•")     # the lowest at the bottom right
    assert "o" in "".join(plot)
    assert lines[0].startswith("3.000") and lines[4].lstrip().startswith("1.000")
    assert "• train loss" in lines[-1] and "o eval loss" in lines[-1]
    assert line_chart({"x": []}) == ["(no data to chart yet)"]


def test_the_loss_charts_step_ticks_are_whole_steps():
    from aios_tui.ui.widgets.loss_chart import step_ticks

    assert step_ticks(1, 52) == [1, 14, 26, 39, 52]
    assert step_ticks(3, 5) == [3, 4, 5]
    assert step_ticks(7, 7) == [7]
