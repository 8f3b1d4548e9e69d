"""rasterclustering:kmeans: k-means classes of raster pixels, fitted on an area of interest."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterNumber, QgsProcessingParameterRange

from ..core import parameters as rules
from ..core.clustering.kmeans import KMeansSettings
from .base import optional_range
from .clustering import ClusteringAlgorithm
from .common_outputs import add_clusters_parameter

HELP = """<p>Groups the pixels of one or more rasters into <b>k classes</b> by k-means, without
training data: management zones from NDVI, water/land from NIR, vegetation classes from several
bands, or change classes from several dates of one index.</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): every band of every layer is one feature of each pixel. Layers
on another grid (resolution, origin, size or CRS) are aligned onto the <i>first</i> layer's grid
by nearest-neighbour resampling (values stay real measurements; pixels a layer does not cover are
nodata). A pixel is used only when every feature is valid (not nodata, not NaN/±inf).</li>
<li><b>Number of clusters</b> (CLUSTERS): 2–255, default 5.</li>
<li><b>Area of interest</b> (AOI, optional): polygons in any CRS, reprojected to the raster's CRS;
"selected features only" works. Invalid geometries are repaired (makeValid).</li>
<li><b>Extent</b> (EXTENT, optional): a bounding box in any CRS. With both an area of interest and
an extent,
their intersection is used. The centres are computed only from valid pixels whose centre is inside
this
area (the whole raster when neither is given).</li>
<li><b>Clip the output to the area</b> (CLIP, default yes): the output covers the area's bounding
box on the
input grid, nodata outside the area; when off, the whole input is classified with the area's
centres.</li>
<li><b>Random seed</b> (SEED): the same inputs and seed give byte-identical outputs.</li>
<li><b>Sample size for several features</b> (SAMPLE_SIZE, advanced, default 1,000,000): pixels
drawn at random from the
area to fit several features (and to estimate quantiles). One feature always uses every pixel.</li>
<li><b>Standardize features</b> (STANDARDIZE, advanced, default yes): with several features, scale
each to
unit variance before measuring distances, so bands in different units or ranges weigh alike.
Turn it off for bands in one unit (e.g. reflectances) to let high-variance bands weigh more.
Ignored for one feature (scaling does not change 1-D k-means).</li>
<li><b>Clip features to these percentiles</b> (CLIP_QUANTILES, advanced, default off): e.g. 0.5,
99.5: feature values
are clipped to these percentiles (estimated on the sample) before fitting and labelling, so
outliers such as clouds do not claim a class of their own.</li>
<li><b>Minimum zone area</b> (MIN_AREA, m², default 0 = off): after labelling, connected zones of
one class smaller than this are merged into their largest neighbouring zone (GDAL's sieve, in
square metres on the ground in any CRS, nodata never changed nor merged into), so the result is
zones you can manage: a zone under the minimum area remains only where it touches no other zone
(see the
Minimum-area sieve's help). The reference clustering API accepts 1000–999999 m²; other values are
allowed. The statistics describe the sieved zones; the centres stay those of the fit.</li>
<li><b>Connectivity of zones</b> (CONNECTIVITY, 4 or 8, default 8): whether pixels touching only by
a
corner belong to the same zone.</li>
<li><b>One multipolygon per class</b> (ZONES_PER_CLASS, advanced, default no): the zone polygons
hold one feature per class instead of one per connected zone.</li>
</ul>
<h3>Method</h3>
<p>One feature: the centres are the <b>exact optimum</b> of 1-D k-means over all valid pixels of
the area (dynamic programming on the sorted values' histogram, refined on the data), better than
the local optimum of ordinary k-means. Several features: Lloyd's k-means (scikit-learn) on the
seeded sample, from the best of 30 k-means++ starts on a 20,000-pixel part of it (the 3 best
refined on the whole sample), so that the result does not depend on a lucky start. Every pixel
then takes its nearest centre.</p>
<p>Classes are numbered 1..k in ascending centre value (one feature) or ascending mean of the
standardized centre values (several features). Nodata is 0.</p>
<h3>Outputs</h3>
<ul><li><b>Classes</b> (OUTPUT): UInt8 GeoTIFF (tiled, compressed) on the input grid, styled with
one colour per class labelled with its centre (a .qml beside it and a colour table inside it).</li>
<li><b>Centroids</b> (CENTROIDS): JSON, for one feature exactly
<code>{"NDVI": [[1, [0.171]], [2, [0.404]]]}</code>, keyed by the band description (else the
layer name); for several features the key lists the features and the file also records the
scaling and clipping, so "Classify with saved centres" can reapply it.</li>
<li><b>Class statistics</b> (STATISTICS): one row per class: centre, pixel count, area in m², and
mean/std/min/max of every input band within the class.</li>
<li><b>Distance to the class centre</b> (DISTANCE, optional): Float32 GeoTIFF of each pixel's
distance to the centre of its class (after the sieve), in the units the fit measured: the band's
own for one feature, standardized units when standardizing several, after clipping to the
percentiles; NaN where the class is nodata. Large distances show where the centres fit badly
(clouds, a new crop); styled from 0 to its 98th percentile.</li>
<li><b>Zone polygons</b> (ZONES, optional): the management zones as polygons, one per connected
zone of the final classes (after the minimum zone area, joined by the connectivity of zones) on
the exact pixel edges, with its zone number, class, class centre, area in m², perimeter in m and
the mean/min/max/std of every input band within it; styled like the classes. A GeoPackage,
Shapefile or GeoJSON file. <i>Classes to zone polygons</i> makes them from any classified
raster, also smoothed.</li></ul>
"""


class KMeansAlgorithm(ClusteringAlgorithm):
    """K-means clustering with an area of interest."""

    NAME = "kmeans"
    DISPLAY_NAME = "Raster k-means clustering"
    HELP = HELP
    ICON = "kmeans.svg"
    SAMPLE_SIZE_RULE = rules.KMEANS_SAMPLE_SIZE
    CLASSES_NAME = "k-means classes"
    ALWAYS_SAMPLED = False

    CLIP_QUANTILES = "CLIP_QUANTILES"

    def add_method_parameters(self):
        add_clusters_parameter(self, self.tr("Number of clusters"), self.tr("classes"))

    def add_advanced_method_parameters(self):
        self.add_with_help(QgsProcessingParameterRange(
            self.CLIP_QUANTILES, self.tr("Clip features to these percentiles (e.g. 0.5, 99.5)"),
            QgsProcessingParameterNumber.Double, optional=True),
            self.tr("Clip outliers (clouds) before fitting; empty = no clipping."), advanced=True)

    def method_problem(self, parameters, context):
        quantiles = self._clip_quantiles(parameters, context)
        problem = None if quantiles is None else rules.CLIP_QUANTILES.problem(quantiles)
        return problem + self.tr(" Leave both empty for no clipping.") if problem else None

    def _clip_quantiles(self, parameters, context):
        return optional_range(self, parameters, self.CLIP_QUANTILES, context)

    def fit_settings(self, parameters, context):
        return KMeansSettings(
            n_clusters=self.parameterAsInt(parameters, self.CLUSTERS, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            standardize=self.parameterAsBool(parameters, self.STANDARDIZE, context),
            clip_quantiles=self._clip_quantiles(parameters, context))
