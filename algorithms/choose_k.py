"""rasterclustering:choosek: inertia and silhouette of k-means over a range of k, to choose k."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
)
from qgis.PyQt.QtCore import QVariant

from ..core import parameters as rules
from ..core.clustering.choose_k import (
    DEFAULT_K_MAX,
    DEFAULT_K_MIN,
    DEFAULT_SAMPLE_SIZE,
    FIT_SAMPLE_FACTOR,
    MAX_SAMPLE_SIZE,
    METHODS,
    ChooseKSettings,
    choose_k,
    k_range_problem,
)
from ..core.reports.choose_k import write_report
from .base import (
    RasterClusteringAlgorithm,
    area_of_run,
    core_errors_as_processing_exceptions,
    feedback_callables,
    layers_title,
    refuse_output_over_inputs,
)
from .common_outputs import (
    add_area_parameters,
    add_distance_metric_parameter,
    add_feature_rasters_parameter,
    add_fuzziness_parameter,
    add_seed_parameter,
    distance_metric,
    write_table,
)
from .styling import name_on_load

HELP = f"""<p>Helps choose the <b>number of clusters k</b> for Raster k-means clustering (or
Fuzzy c-means zones): fits the method for every k of a range on the pixels of the area and
scores each fit with the <b>inertia</b> (for the elbow method) and the <b>silhouette</b>,
optionally the Calinski–Harabasz score, and for fuzzy c-means with Management Zone Analyst's
<b>FPI</b> and <b>NCE</b>. The result is a table, an HTML report with the curves (inline SVG,
readable offline in any browser), and the <b>recommended k</b> as a number a model can pass to
K-means.</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): as in K-means: every band of every layer is one feature, the
layers aligned onto the first one's grid.</li>
<li><b>Area of interest</b> (AOI, optional) and <b>Extent</b> (EXTENT, optional): the pixels
scored, in any CRS (their intersection when both are given; the whole raster when neither).
Invalid area-of-interest geometries are repaired (makeValid, reported in the log).</li>
<li><b>Smallest number of clusters</b> (K_MIN, default {DEFAULT_K_MIN}) and <b>Largest number of
clusters</b> (K_MAX, default {DEFAULT_K_MAX}): the range tried, both included,
{rules.K_MIN.allowed.low:g}–{rules.K_MAX.allowed.high:g}.</li>
<li><b>Silhouette sample size</b> (SAMPLE_SIZE, default {DEFAULT_SAMPLE_SIZE:,} pixels, at most
{MAX_SAMPLE_SIZE:,}): the seeded random sample of valid pixels the silhouette (and
Calinski–Harabasz score) is computed on. The silhouette costs the square of this size in distances
per k.</li>
<li><b>Standardize features</b> (STANDARDIZE, advanced, default yes): with several features, scale
each to
unit variance before clustering and scoring, as K-means does.</li>
<li><b>Random seed</b> (SEED): the same inputs and seed give the same scores.</li>
<li><b>Also compute the Calinski–Harabasz score</b> (CALINSKI_HARABASZ, default no): also compute
this score (third
curve and column).</li>
<li><b>Method</b> (METHOD, default k-means): 0 k-means, 1 fuzzy c-means (as Fuzzy c-means zones
fits it, on the fit sample also for one feature).</li>
<li><b>Fuzziness exponent m</b> (FUZZINESS, advanced, default {rules.FUZZINESS.default}) and
<b>Distance</b> (DISTANCE_METRIC, advanced, default Euclidean): fuzzy c-means's exponent and norm,
as in Fuzzy c-means zones.</li>
</ul>
<h3>Method</h3>
<p><b>Inertia</b> (within-cluster sum of squares) comes from K-means's own fit. One feature: the
exact 1-D optimum over <i>all</i> valid pixels of the area, so the curve is the true minimum for
each k. Several features: k-means (the best of many k-means++ starts) on a seeded sample of
{FIT_SAMPLE_FACTOR} × the
silhouette sample size (100,000 pixels by default), the inertia summed over that sample (in
standardized
units when standardizing). <b>Silhouette</b>: scikit-learn's mean silhouette coefficient on the
silhouette sample, each pixel labelled with its nearest centre (−1..1; higher is better; above
0.5 a reasonable structure, above 0.7 a strong one).</p>
<p><b>Fuzzy c-means</b>: the inertia is that of the hard zones (nearest centre) in the norm; the
<b>fuzziness performance index</b> FPI = 1 − (c·F − 1)/(c − 1), with F the mean over the fit
sample of each pixel's sum of squared memberships, and the <b>normalized classification
entropy</b> NCE = n/(n − c) · (−Σ u ln u)/n measure how much the zones overlap; both are 0 for
crisp zones.</p>
<p><b>Recommended k</b>: k-means: the highest silhouette (the smallest k on a tie). Fuzzy
c-means: MZA's rule, the k where FPI and NCE are both lowest; when their minima fall on different
k, the k with the lowest sum of FPI and NCE, each scaled to 0..1 over the range (so both count
alike); on a tie, the smallest k. <b>Elbow</b> (shown for judgement): with k and inertia each
scaled to 0..1, the k whose point lies farthest below the
chord from the first to the last point (the knee of the kneedle method).</p>
<h3>Outputs</h3>
<ul><li><b>Scores</b> (TABLE): one row per k: k, inertia, silhouette, [calinski_harabasz],
[fpi, nce], is_elbow, is_recommended (1 or 0).</li>
<li><b>Report</b> (REPORT): HTML with the inertia and silhouette curves, the recommended k and the
elbow marked, the values and the method.</li>
<li><b>Recommended number of clusters</b> (RECOMMENDED_K): a number; in a model, feed it to
K-means's CLUSTERS.</li></ul>
"""


class ChooseKAlgorithm(RasterClusteringAlgorithm):
    """Scores of k-means for a range of k."""

    NAME = "choosek"
    DISPLAY_NAME = "Choose the number of clusters"
    HELP = HELP
    ICON = "choosek.svg"

    K_MIN = "K_MIN"
    K_MAX = "K_MAX"
    CALINSKI_HARABASZ = "CALINSKI_HARABASZ"
    TABLE = "TABLE"
    REPORT = "REPORT"
    RECOMMENDED_K = "RECOMMENDED_K"

    def initAlgorithm(self, config=None):
        """Declare the parameters and outputs (their names are the public API of models)."""
        add_feature_rasters_parameter(self, self.tr(
            "Every band of every layer is a feature; layers are aligned to the first one's grid."))
        add_area_parameters(self, pixels_role="whose pixels are clustered and scored")
        allowed = rules.K_MIN.allowed
        self.add_number(rules.K_MIN, self.tr("Smallest number of clusters"),
                        self.tr("First k tried, {:g}–{:g}.").format(allowed.low, allowed.high))
        self.add_number(rules.K_MAX, self.tr("Largest number of clusters"),
                        self.tr("Last k tried (included); at least the smallest number of "
                                "clusters."))
        self.add_number(rules.SILHOUETTE_SAMPLE_SIZE, self.tr("Silhouette sample size (pixels)"),
                        self.tr("Seeded random pixels the silhouette is computed on (cost grows "
                                "with its square); several features are fitted on {} times as "
                                "many.").format(FIT_SAMPLE_FACTOR))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.STANDARDIZE, self.tr("Standardize features (several features)"),
            defaultValue=True),
            self.tr("Scale each feature to unit variance before clustering, as K-means does."),
            advanced=True)
        add_seed_parameter(self, self.tr("Same inputs and seed give the same scores."))
        self.add_with_help(QgsProcessingParameterBoolean(
            self.CALINSKI_HARABASZ, self.tr("Also compute the Calinski–Harabasz score"),
            defaultValue=False), self.tr("Adds a third score (higher is better) to the table and "
                                         "report."))
        self.add_with_help(QgsProcessingParameterEnum(
            self.METHOD, self.tr("Method"), options=[self.tr("k-means"),
                                                     self.tr("fuzzy c-means")],
            defaultValue=0),
            self.tr("k-means, or fuzzy c-means with Management Zone Analyst's FPI and NCE."))
        add_fuzziness_parameter(self, self.tr("Fuzzy c-means: greater than 1, as in Fuzzy "
                                              "c-means zones."), advanced=True)
        add_distance_metric_parameter(self, self.tr("Fuzzy c-means: the norm, as in Fuzzy "
                                                    "c-means zones."), advanced=True)
        self.add_with_help(QgsProcessingParameterFeatureSink(
            self.TABLE, self.tr("Scores"), QgsProcessing.TypeVector, optional=True,
            createByDefault=True),
            self.tr("One row per k: k, inertia, silhouette, [calinski_harabasz], [fpi, nce], "
                    "is_elbow, is_recommended."))
        self.add_with_help(QgsProcessingParameterFileDestination(
            self.REPORT, self.tr("Report"), fileFilter=self.tr("HTML files (*.html)"),
            optional=True, createByDefault=True),
            self.tr("HTML report with the inertia and silhouette curves and the recommended k."))
        self.addOutput(QgsProcessingOutputNumber(self.RECOMMENDED_K,
                                                 self.tr("Recommended number of clusters")))

    def checkParameterValues(self, parameters, context):
        """Refuse a range of k that cannot be scored before any work starts."""
        problem = k_range_problem(self.parameterAsInt(parameters, self.K_MIN, context),
                                  self.parameterAsInt(parameters, self.K_MAX, context),
                                  self.parameterAsInt(parameters, self.SAMPLE_SIZE, context))
        if problem:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def _settings(self, parameters, context) -> ChooseKSettings:
        return ChooseKSettings(
            k_min=self.parameterAsInt(parameters, self.K_MIN, context),
            k_max=self.parameterAsInt(parameters, self.K_MAX, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            standardize=self.parameterAsBool(parameters, self.STANDARDIZE, context),
            calinski_harabasz=self.parameterAsBool(parameters, self.CALINSKI_HARABASZ, context),
            method=METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
            fuzziness=self.parameterAsDouble(parameters, self.FUZZINESS, context),
            distance_metric=distance_metric(self, parameters, context))

    def process(self, parameters, context, feedback):
        """Fit and score every k, then write the table and the report."""
        layers, inputs = self.input_rasters(parameters, context)
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context)
        refuse_output_over_inputs(report_path, inputs)
        geometry_wkt, bbox = area_of_run(self, parameters, context, feedback, layers[0].crs())
        settings = self._settings(parameters, context)
        progress, is_cancelled = feedback_callables(feedback)
        with core_errors_as_processing_exceptions():
            result = choose_k(inputs, settings=settings, geometry_wkt=geometry_wkt, bbox=bbox,
                              progress=progress, is_cancelled=is_cancelled)
            if report_path:
                write_report(result, report_path)
        for message in result.messages:
            feedback.pushWarning(message)
        feedback.pushInfo(f"Inertia: {result.inertia_method}. Silhouette on "
                          f"{result.silhouette_pixels:,} sampled pixels.")
        for score in result.scores:
            harabasz = ("" if score.calinski_harabasz is None
                        else f", Calinski–Harabasz {score.calinski_harabasz:.6g}")
            fuzzy = "" if score.fpi is None else f", FPI {score.fpi:.4f}, NCE {score.nce:.4f}"
            feedback.pushInfo(f"k = {score.k}: inertia {score.inertia:.6g}, silhouette "
                              f"{score.silhouette:.4f}{harabasz}{fuzzy}")
        elbow = "none" if result.elbow_k is None else str(result.elbow_k)
        feedback.pushInfo(f"Recommended k = {result.recommended_k} "
                          f"({result.recommendation_reason}); elbow k = {elbow}.")
        table_id = self._write_table(parameters, context, result)
        name_on_load(context, table_id, f"{layers_title(layers)} · scores of k "
                                        f"{settings.k_min}–{settings.k_max}")
        return {self.TABLE: table_id, self.REPORT: report_path or None,
                self.RECOMMENDED_K: result.recommended_k}

    def _write_table(self, parameters, context, result):
        columns = [("k", QVariant.LongLong), ("inertia", QVariant.Double),
                   ("silhouette", QVariant.Double)]
        if result.settings.calinski_harabasz:
            columns.append(("calinski_harabasz", QVariant.Double))
        if result.settings.fuzzy:
            columns += [("fpi", QVariant.Double), ("nce", QVariant.Double)]
        columns += [("is_elbow", QVariant.Int), ("is_recommended", QVariant.Int)]
        rows = []
        for score in result.scores:
            row = [score.k, score.inertia, score.silhouette]
            if result.settings.calinski_harabasz:
                row.append(score.calinski_harabasz)
            if result.settings.fuzzy:
                row += [score.fpi, score.nce]
            row += [int(score.k == result.elbow_k), int(score.k == result.recommended_k)]
            rows.append(row)
        return write_table(self, parameters, self.TABLE, context, columns, rows)
