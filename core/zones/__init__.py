"""Management zones as polygons: the connected regions of a classified raster, exact or smoothed."""
