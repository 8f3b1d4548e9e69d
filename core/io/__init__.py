"""Reading rasters: grids and windows, the feature stack, areas of interest, pixel areas."""
