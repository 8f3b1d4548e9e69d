"""Radiometric calibration: scene metadata, formulas, calibrated band files."""
