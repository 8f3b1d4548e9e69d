"""rasterclustering:isodata: k-means whose number of classes adapts by splitting and merging."""

from __future__ import annotations

from qgis.core import QgsProcessingOutputNumber

from ..core import parameters as rules
from ..core.clustering.isodata import (
    DEFAULT_MAX_CLUSTERS,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MERGE_DISTANCE,
    DEFAULT_MIN_CLASS_SHARE,
    DEFAULT_MIN_CLUSTERS,
    DEFAULT_SPLIT_STD,
    SPLIT_OFFSET,
    IsodataOptions,
    IsodataSettings,
)
from ..core.clustering.kmeans import DEFAULT_SAMPLE_SIZE
from .clustering import ClusteringAlgorithm
from .common_outputs import SIEVE_AND_ZONES_HELP

HELP = f"""<p>Groups the pixels of one or more rasters into classes by <b>ISODATA</b>: k-means that
<b>splits</b> classes too spread out and <b>merges</b> classes too close together, so the number
of classes adapts to the data between a smallest and a largest number. The variant is Ball &amp;
Hall's ISODATA as Tou &amp; Gonzalez (1974, Pattern Recognition Principles, pp. 97–100) give
it, with the number of classes bounded. The final number of classes is in the log and an
output a model can use.</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): as in k-means: every band of every layer is one feature, the
layers aligned onto the first one's grid.</li>
<li><b>Initial number of clusters</b> (CLUSTERS, default 5): the classes started from, which
is also the number aimed at (Tou &amp; Gonzalez's K): classes are split when there are at most
half of it, merged when there are twice as many.</li>
<li><b>Smallest number of clusters</b> (MIN_CLUSTERS, default {DEFAULT_MIN_CLUSTERS}) and
<b>Largest number of clusters</b> (MAX_CLUSTERS, default {DEFAULT_MAX_CLUSTERS}): the bounds the
number of classes never leaves (2–255; the initial number lies between them).</li>
<li><b>Minimum class size</b> (MIN_CLASS_SIZE, % of the sampled pixels, default
{100 * DEFAULT_MIN_CLASS_SHARE:g}): a class with fewer pixels is dissolved, its pixels going to
the nearest other class.</li>
<li><b>Split threshold</b> (SPLIT_STD, default {DEFAULT_SPLIT_STD:g}): a class whose largest
standard deviation along one feature exceeds this may be split in two along that feature, at
± {SPLIT_OFFSET:g} standard deviation from its centre.</li>
<li><b>Merge distance</b> (MERGE_DISTANCE, default {DEFAULT_MERGE_DISTANCE:g}): two classes whose
centres are closer than this are merged into their size-weighted mean.</li>
<li><b>Maximum iterations</b> (MAX_ITERATIONS, default {DEFAULT_MAX_ITERATIONS}): split-and-merge
iterations (Tou &amp; Gonzalez's I).</li>
<li><b>Area of interest</b> (AOI, optional) and <b>Extent</b> (EXTENT, optional): the pixels that
fit the classes, in any CRS (their intersection when both are given).</li>
<li><b>Clip the output to the area</b> (CLIP, default yes): output only the area's bounding box,
nodata outside the area; when off, the whole raster is labelled.</li>
<li><b>Random seed</b> (SEED): the same inputs and seed give byte-identical outputs.</li>
<li><b>Sample size</b> (SAMPLE_SIZE, advanced, default
{DEFAULT_SAMPLE_SIZE:,}): pixels drawn at random from the area to fit the classes (always
sampled).</li>
<li><b>Standardize features</b> (STANDARDIZE, advanced, default yes): with several features, scale
each to unit variance first. The split threshold and the merge distance are in the units of the
fit: standard deviations of each feature when standardizing (the defaults are meant for these),
the features' own units otherwise.</li>
{SIEVE_AND_ZONES_HELP}
</ul>
<h3>Method</h3>
<p>From seeded k-means++ centres, each iteration assigns the sampled pixels to their nearest
centre, dissolves classes under the minimum size, moves the centres to their classes' means,
then either splits (with at most half the initial number of classes, or on odd iterations with
fewer than twice as many: a class wider than the split threshold that is more spread out than
the average class and has more than twice the minimum size, or any such class when there are
few) or merges (every pair closer than the merge distance, closest first, each class once per
iteration). It stops after the maximum iterations, or when two iterations in a row change
nothing. Lloyd's k-means then settles the centres, dissolving and merging again until no class
is too small and no two are too close, so the result is a k-means fixed point. Every pixel is
then labelled with its nearest centre, and the classes are numbered and styled as k-means's.</p>
<h3>Outputs</h3>
<ul><li><b>Classes</b> (OUTPUT), <b>Centroids</b> (CENTROIDS), <b>Class statistics</b>
(STATISTICS), <b>Distance to the class centre</b> (DISTANCE, optional) and <b>Zone
polygons</b> (ZONES, optional; one per connected zone, GeoPackage, Shapefile or GeoJSON): as
k-means's.</li>
<li><b>Final number of classes</b> (FINAL_CLUSTERS): a number; in a model, feed it to another
step.</li></ul>
"""


class IsodataAlgorithm(ClusteringAlgorithm):
    """ISODATA clustering (split and merge)."""

    NAME = "isodata"
    DISPLAY_NAME = "ISODATA clustering"
    HELP = HELP
    ICON = "isodata.svg"
    SAMPLE_SIZE_RULE = rules.KMEANS_SAMPLE_SIZE
    CLASSES_NAME = "ISODATA classes"

    MIN_CLUSTERS = rules.MIN_CLUSTERS.name
    MAX_CLUSTERS = rules.MAX_CLUSTERS.name
    MIN_CLASS_SIZE = rules.MIN_CLASS_SIZE.name
    SPLIT_STD = rules.SPLIT_STD.name
    MERGE_DISTANCE = rules.MERGE_DISTANCE.name
    MAX_ITERATIONS = rules.ISODATA_ITERATIONS.name
    FINAL_CLUSTERS = "FINAL_CLUSTERS"

    def add_method_parameters(self):
        self.add_number(rules.CLUSTERS, self.tr("Initial number of clusters"),
                        self.tr("Classes started from and aimed at, 2–255."))
        self.add_number(rules.MIN_CLUSTERS, self.tr("Smallest number of clusters"),
                        self.tr("The classes never fall below this number."))
        self.add_number(rules.MAX_CLUSTERS, self.tr("Largest number of clusters"),
                        self.tr("The classes never exceed this number."))
        self.add_number(rules.MIN_CLASS_SIZE, self.tr("Minimum class size (% of the sampled "
                                                      "pixels)"),
                        self.tr("Smaller classes are dissolved into their neighbours."))
        self.add_number(rules.SPLIT_STD, self.tr("Split threshold (standard deviation)"),
                        self.tr("Classes wider than this along a feature may be split (fit "
                                "units: standard deviations when standardizing)."))
        self.add_number(rules.MERGE_DISTANCE, self.tr("Merge distance"),
                        self.tr("Classes whose centres are closer than this are merged (fit "
                                "units)."))
        self.add_number(rules.ISODATA_ITERATIONS, self.tr("Maximum iterations"),
                        self.tr("Split-and-merge iterations."))

    def add_method_outputs(self):
        self.addOutput(QgsProcessingOutputNumber(self.FINAL_CLUSTERS,
                                                 self.tr("Final number of classes")))

    def fit_settings(self, parameters, context):
        options = IsodataOptions(
            initial_clusters=self.parameterAsInt(parameters, self.CLUSTERS, context),
            min_clusters=self.parameterAsInt(parameters, self.MIN_CLUSTERS, context),
            max_clusters=self.parameterAsInt(parameters, self.MAX_CLUSTERS, context),
            min_class_share=self.parameterAsDouble(parameters, self.MIN_CLASS_SIZE,
                                                   context) / 100,
            split_std=self.parameterAsDouble(parameters, self.SPLIT_STD, context),
            merge_distance=self.parameterAsDouble(parameters, self.MERGE_DISTANCE, context),
            max_iterations=self.parameterAsInt(parameters, self.MAX_ITERATIONS, context))
        return IsodataSettings(
            options, seed=self.parameterAsInt(parameters, self.SEED, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            standardize=self.parameterAsBool(parameters, self.STANDARDIZE, context))

    def method_results(self, result, pixel_outputs) -> dict:
        return {self.FINAL_CLUSTERS: result.model.n_clusters}
