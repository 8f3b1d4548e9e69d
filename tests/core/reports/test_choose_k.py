"""The choose-k HTML report: well-formed, its curves and marks where the scores put them."""

import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import numpy as np
import pytest
from raster_clustering.core.clustering.choose_k import ChooseKResult, ChooseKSettings, KScores
from raster_clustering.core.errors import InvalidInputError
from raster_clustering.core.reports.choose_k import report_html, write_report

SVG = "{http://www.w3.org/2000/svg}"


def make_result(calinski_harabasz=False, names=("a", "b")):
    scores = [KScores(k, 100.0 / k ** 2, s, (10.0 * k if calinski_harabasz else None))
              for k, s in zip(range(2, 9), [0.5, 0.7, 0.9, 0.6, 0.4, 0.35, 0.3])]
    return ChooseKResult(scores, 4, 3, tuple(names), 1234, 1000, "k-means++ on a sample",
                         ChooseKSettings(k_min=2, k_max=8, calinski_harabasz=calinski_harabasz),
                         ["a <warning> & more"])


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_is_well_formed_with_two_curves_and_the_marks():
    result = make_result(names=("NIR <B8>", "red & B4"))
    text = report_html(result)
    collector = _Collector()
    collector.feed(text)
    assert [t for t, _ in collector.tags].count("svg") == 2
    root = ElementTree.fromstring(text.split("\n", 1)[1])  # without the doctype line
    svgs = root.findall(f".//{SVG}svg")
    assert [svg.get("class") for svg in svgs] == ["inertia", "silhouette"]
    for svg in svgs:
        polyline = svg.find(f"{SVG}polyline")
        points = [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]
        assert len(points) == 7
        xs = [x for x, _ in points]
        assert xs == sorted(xs)
        mark = svg.find(f"{SVG}circle[@class='recommended']")
        assert float(mark.get("cx")) == pytest.approx(points[4 - 2][0])
        assert float(mark.get("cy")) == pytest.approx(points[4 - 2][1])
    elbow = svgs[0].find(f"{SVG}circle[@class='elbow']")
    inertia_points = svgs[0].find(f"{SVG}polyline").get("points").split()
    assert elbow.get("cx") + "," + elbow.get("cy") == inertia_points[3 - 2]
    silhouettes = [float(p.split(",")[1]) for p in
                   svgs[1].find(f"{SVG}polyline").get("points").split()]
    assert np.argmin(silhouettes) == 2, "the highest silhouette is drawn highest (smallest y)"
    assert root.find(".//*[@id='recommended-k']").text == "4"
    assert "NIR &lt;B8&gt;" in text and "a &lt;warning&gt; &amp; more" in text
    rows = root.findall(".//table/tr")
    assert len(rows) == 1 + 7


def test_report_has_a_third_curve_with_calinski_harabasz(tmp_path):
    result = make_result(calinski_harabasz=True)
    write_report(result, tmp_path / "report.html")
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    root = ElementTree.fromstring(text.split("\n", 1)[1])
    svgs = root.findall(f".//{SVG}svg")
    assert [svg.get("class") for svg in svgs] == ["inertia", "silhouette", "calinski-harabasz"]
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_report(make_result(), tmp_path / "missing" / "report.html")
