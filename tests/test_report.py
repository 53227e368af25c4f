"""`tintline data report`: the page exists, shows every section, and every thumbnail it links exists."""

from __future__ import annotations

import re

from tintline.data.report import write_report
from tintline.data.store import Store
from tintline.monitor.charts import bar_chart, color_bars, histogram


def test_report_sections_and_thumbnails(built_dataset, tmp_path):
    out = tmp_path / "rep" / "index.html"
    with Store.open(built_dataset) as store:
        path = write_report(store, out)
        reasons = store.reason_counts()
    assert path == out
    html = out.read_text()
    for section in ("Summary", "Tags before and after cleaning", "Rejections", "Near-duplicate groups",
                    "Line-art styles", "Measurements"):
        assert f"<h2>{section}</h2>" in html, section
    for reason, n in reasons.items():
        assert f"<h3>{reason} ({n})</h3>" in html, reason
    srcs = re.findall(r"src=['\"](thumbs/[^'\"]+)['\"]", html)
    assert srcs and all((out.parent / s).is_file() for s in srcs)
    assert html.count("<svg") >= 8  # bar charts and histograms, inline
    # undecodable files are shown as a text box (their detail), not as a broken image; decodable ones as a thumbnail
    for name in ("zero.png", "text.png", "garbage.jpg", "truncated.png", "bomb.png"):
        cell = _cell_of(html, name)
        assert '<div class="none">' in cell and "<img" not in cell, (name, cell)
    for name in ("tiny.png", "gray.png"):
        cell = _cell_of(html, name)
        assert "<img" in cell and '<div class="none">' not in cell, (name, cell)
    assert "near-duplicate" in html and "kept" in html


def _cell_of(html: str, name: str) -> str:
    """The one thumbnail cell whose caption is the file ``name``."""
    cells = re.findall(r'<div class="cell [^"]*" title="[^"]*">(?:(?!<div class="cell ).)*?<br>'
                       + re.escape(name) + "</div>", html)
    assert len(cells) == 1, (name, cells)
    return cells[0]


def test_report_cli_prints_the_path(built_dataset, tmp_path, capsys):
    from tintline.cli import main

    out = tmp_path / "r.html"
    assert main(["data", "report", str(built_dataset), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.is_file() and (tmp_path / "thumbs").is_dir()


def test_charts_render_without_data_and_with():
    assert "no data" in bar_chart([], "t")
    assert "no data" in histogram({"a": []}, "t")
    svg = bar_chart([("a", 3, 1), ("b", 5, 5)], "tags", labels=("before", "after"))
    assert svg.startswith("<svg") and svg.count("<rect") == 4
    svg = histogram({"kept": [0.1, 0.2, 0.5], "dropped": [0.9]}, "h", lo=0, hi=1, marker=0.3)
    assert "threshold 0.3" in svg and svg.count("<rect") >= 4
    assert histogram({"x": [1, 10, 100]}, "log", log_x=True).count("<rect") >= 4
    assert color_bars([1, 2], ["#f00", "#0f0"], "hues").count("<rect") == 2
