"""Band math: the expression language, index aliases, band names, rasters."""
