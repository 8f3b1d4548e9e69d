"""rasterclustering:fuzzycmeans: fuzzy c-means zones as Management Zone Analyst makes them."""

from __future__ import annotations

from qgis.core import QgsProcessingParameterRasterDestination

from ..core import parameters as rules
from ..core.clustering.classify import PixelOutputs
from ..core.clustering.fuzzy_cmeans import (
    DEFAULT_FUZZINESS,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_TOLERANCE,
    FuzzyCMeansSettings,
)
from .base import optional_output_layer
from .clustering import ClusteringAlgorithm
from .common_outputs import (
    SIEVE_AND_ZONES_HELP,
    add_clusters_parameter,
    add_distance_metric_parameter,
    add_fuzziness_parameter,
    distance_metric,
)

HELP = f"""<p>Groups the pixels of one or more rasters into <b>c zones</b> by <b>fuzzy c-means</b>,
the method precision agriculture has used for management zones for twenty years (Management
Zone Analyst, MZA; Fridgen et al. 2004, Agron. J. 96:100–108): every pixel belongs to every zone
with a membership between 0 and 1, its zone is the one of highest membership, and the
memberships show where zones blend. Choose the number of zones with <i>Choose the number of
clusters</i> (its fuzzy c-means method gives MZA's FPI and NCE).</p>
<h3>Parameters</h3>
<ul>
<li><b>Input rasters</b> (INPUT): as in k-means: every band of every layer is one feature, the
layers aligned onto the first one's grid; a pixel is used only when every feature is valid.</li>
<li><b>Number of zones</b> (CLUSTERS): c, 2–255, default 5.</li>
<li><b>Fuzziness exponent m</b> (FUZZINESS, default {DEFAULT_FUZZINESS}): greater than 1; near 1 the
zones are nearly hard (k-means), larger values blend them. The default is MZA's: for field data
(yield, soil, imagery) with several zones it keeps memberships near 0 or 1 except at zone
borders, where the textbook m = 2 spreads every pixel over five or more zones almost
evenly.</li>
<li><b>Distance</b> (DISTANCE_METRIC, default Euclidean): MZA's three norms: Euclidean;
diagonal (each feature divided by its standard deviation, the same as Euclidean on standardized
features); Mahalanobis (the inverse covariance of the features, which also discounts correlated
bands). Variances and covariances are the sample's.</li>
<li><b>Area of interest</b> (AOI, optional) and <b>Extent</b> (EXTENT, optional): the pixels that
fit the zones, in any CRS (their intersection when both are given).</li>
<li><b>Clip the output to the area</b> (CLIP, default yes): output only the area's bounding box,
nodata outside the area; when off, the whole raster is labelled.</li>
<li><b>Random seed</b> (SEED): the same inputs and seed give byte-identical outputs.</li>
<li><b>Sample size</b> (SAMPLE_SIZE, advanced, default {DEFAULT_SAMPLE_SIZE:,}):
pixels drawn at random from the area to fit the zones (always sampled, also for one feature: each
iteration costs pixels × zones).</li>
<li><b>Standardize features</b> (STANDARDIZE, advanced, default yes): with several features, scale
each to unit variance before measuring distances.</li>
{SIEVE_AND_ZONES_HELP}
</ul>
<h3>Method</h3>
<p>Bezdek's alternating optimisation on the seeded sample, vectorised: from k-means++ centres,
memberships u = 1 / Σ (d_i / d_j)^(2/(m−1)) and centres v = Σ u^m x / Σ u^m in turn, until no
membership changes by {DEFAULT_TOLERANCE:g} or more, or {DEFAULT_MAX_ITERATIONS} iterations (MZA's
stopping rule). Every pixel of the output is then labelled block by block with the zone of its
highest membership (= its nearest centre in the chosen norm). Zones are numbered like k-means's
classes: ascending centre (one feature) or ascending mean standardized centre.</p>
<h3>Outputs</h3>
<ul><li><b>Classes</b> (OUTPUT): UInt8 GeoTIFF, nodata 0, zones 1..c, styled as k-means's
classes.</li>
<li><b>Centroids</b> (CENTROIDS): the centroid JSON of k-means, which also records the method, the
exponent, the norm and its matrix, so <i>Classify with saved centres</i> reapplies the zones and
distances exactly.</li>
<li><b>Class statistics</b> (STATISTICS): as k-means's, plus each zone's mean membership of its
pixels (mean_membership: near 1 for a crisp zone).</li>
<li><b>Distance to the class centre</b> (DISTANCE, optional): each pixel's distance to its zone's
centre in the fit's norm and units.</li>
<li><b>Memberships</b> (MEMBERSHIP, optional): Float32 GeoTIFF with one band per zone, each
pixel's membership in it; the bands sum to 1 on valid pixels, NaN elsewhere. With a minimum zone
area, a merged pixel keeps its memberships (its zone changes, not its values).</li>
<li><b>Zone polygons</b> (ZONES, optional): as k-means's, one polygon per connected zone of the
final zones with its class, centre, area, perimeter and band statistics (GeoPackage, Shapefile or
GeoJSON).</li></ul>
"""


class FuzzyCMeansAlgorithm(ClusteringAlgorithm):
    """Fuzzy c-means zones with MZA's norms."""

    NAME = "fuzzycmeans"
    DISPLAY_NAME = "Fuzzy c-means zones"
    HELP = HELP
    ICON = "fuzzycmeans.svg"
    SAMPLE_SIZE_RULE = rules.FUZZY_SAMPLE_SIZE
    CLASSES_NAME = "fuzzy c-means zones"

    MEMBERSHIP = "MEMBERSHIP"

    def add_method_parameters(self):
        add_clusters_parameter(self, self.tr("Number of zones"), self.tr("zones"))
        add_fuzziness_parameter(self, self.tr(
            "Greater than 1: near 1 nearly hard zones, larger values blend them; 1.3 is "
            "Management Zone Analyst's default."))
        add_distance_metric_parameter(self, self.tr(
            "The norm distances are measured in, as in Management Zone Analyst."))

    def add_method_outputs(self):
        self.add_with_help(QgsProcessingParameterRasterDestination(
            self.MEMBERSHIP, self.tr("Memberships"), optional=True, createByDefault=True),
            self.tr("Float32 GeoTIFF, one band per zone: each pixel's membership; the bands sum "
                    "to 1."))

    def fit_settings(self, parameters, context):
        return FuzzyCMeansSettings(
            n_clusters=self.parameterAsInt(parameters, self.CLUSTERS, context),
            fuzziness=self.parameterAsDouble(parameters, self.FUZZINESS, context),
            distance_metric=distance_metric(self, parameters, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            standardize=self.parameterAsBool(parameters, self.STANDARDIZE, context))

    def pixel_outputs(self, parameters, context) -> PixelOutputs:
        return PixelOutputs(
            distance_path=optional_output_layer(self, parameters, self.DISTANCE, context),
            membership_path=optional_output_layer(self, parameters, self.MEMBERSHIP, context))

    def method_results(self, result, pixel_outputs) -> dict:
        return {self.MEMBERSHIP: pixel_outputs.membership_path}
