"""Numerics of Raster Clustering: numpy, GDAL and scikit-learn only, never QGIS."""
