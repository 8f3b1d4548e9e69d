"""K-means on raster pixels: the fit, labelling, saved centres, choosing k."""
