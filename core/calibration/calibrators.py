"""Radiometric calibration of Landsat and Sentinel-2 bands: the formulas, and a per-band calibrator
that turns a block of digital numbers into reflectance or temperature (float32, NaN for fill)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, MetadataError
from . import landsat, mtl, sentinel2
from .landsat import LandsatBand, LandsatMetadata, Rescaling
from .sentinel2 import Sentinel2Metadata

KELVIN_AT_ZERO_CELSIUS = 273.15
REFLECTANCE_QUANTITIES = ("TOA reflectance", "surface reflectance")
TEMPERATURE_QUANTITIES = ("brightness temperature", "surface temperature")

# Chander, G., Markham, B. L., Helder, D. L. (2009): Summary of current radiometric calibration
# coefficients for Landsat MSS, TM, ETM+, and EO-1 ALI sensors. Remote Sensing of Environment
# 113, 893-903. Table 4: mean solar exoatmospheric irradiance ESUN, W m-2 um-1, by band.
ESUN_CHANDER_2009 = {
    ("LANDSAT_4", "TM"): {1: 1983.0, 2: 1795.0, 3: 1539.0, 4: 1028.0, 5: 219.8, 7: 83.49},
    ("LANDSAT_5", "TM"): {1: 1983.0, 2: 1796.0, 3: 1536.0, 4: 1031.0, 5: 220.0, 7: 83.44},
    ("LANDSAT_7", "ETM"): {
        1: 1997.0, 2: 1812.0, 3: 1533.0, 4: 1039.0, 5: 230.8, 7: 84.90, 8: 1362.0,
    },
}
# Same paper, Table 5: thermal band calibration constants K1 (W m-2 sr-1 um-1) and K2 (K), used
# only when an old metadata file does not carry K1_CONSTANT_BAND_n / K2_CONSTANT_BAND_n.
THERMAL_CONSTANTS_CHANDER_2009 = {
    ("LANDSAT_4", "TM"): (671.62, 1284.30),
    ("LANDSAT_5", "TM"): (607.76, 1260.56),
    ("LANDSAT_7", "ETM"): (666.09, 1282.71),
}


def earth_sun_distance_au(acquisition_date: date) -> float:
    """Earth-Sun distance on a date, in astronomical units.

    d = 1 - 0.01672 cos(0.9856 (DOY - 4)) with the angle in degrees: the first-order effect of
    the orbit's eccentricity (0.01672) with perihelion near 4 January. It agrees with the
    EARTH_SUN_DISTANCE of USGS metadata files to about 1e-4 AU.

    Args:
        acquisition_date: the acquisition date.

    Returns:
        The distance in AU (about 0.983 in early January, 1.017 in early July).
    """
    day_of_year = acquisition_date.timetuple().tm_yday
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (day_of_year - 4)))


def radiance_rescaling_from_limits(
    lmax: float, lmin: float, qcalmax: float, qcalmin: float
) -> tuple[float, float]:
    """Radiance gain and bias of pre-2012 style metadata: L = G·DN + B with
    G = (LMAX − LMIN) / (QCALMAX − QCALMIN) and B = LMIN − G·QCALMIN (Chander et al. 2009,
    eq. 1).

    Args:
        lmax, lmin: spectral radiance at QCALMAX and QCALMIN, W m⁻² sr⁻¹ µm⁻¹.
        qcalmax, qcalmin: the DN range.

    Returns:
        (gain, bias).

    Raises:
        MetadataError: QCALMAX equals QCALMIN or LMAX equals LMIN (no usable calibration).
    """
    if qcalmax == qcalmin or lmax == lmin:
        raise MetadataError(
            f"Radiance limits LMAX={lmax}, LMIN={lmin}, QCALMAX={qcalmax}, QCALMIN={qcalmin} give "
            "no calibration (a zero range). The metadata file is damaged: download it again."
        )
    gain = (lmax - lmin) / (qcalmax - qcalmin)
    return gain, lmin - gain * qcalmin


def brightness_temperature_k(radiance: np.ndarray, *, k1: float, k2: float) -> np.ndarray:
    """Inverse Planck function of a thermal band: T = K2 / ln(K1 / L + 1).

    Args:
        radiance: spectral radiance L, W m⁻² sr⁻¹ µm⁻¹, any shape.
        k1, k2: the band's constants (W m⁻² sr⁻¹ µm⁻¹, K).

    Returns:
        Temperature in kelvin, float64, same shape; NaN where L ≤ 0 (no physical temperature).
    """
    radiance = np.asarray(radiance, dtype=np.float64)
    positive = radiance > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        temperature = k2 / np.log(k1 / np.where(positive, radiance, np.nan) + 1.0)
    return temperature


@dataclass(frozen=True)
class BandCalibrator:
    """Converts digital numbers of one band to a physical quantity.

    linear = gain · DN + offset is the result for reflectance and surface temperature, and the
    spectral radiance for brightness temperature (then T = K2 / ln(K1 / linear + 1)). DN values in
    invalid_dn (fill, saturation) become NaN.

    band: 'B4', 'B10', 'B6_VCID_1', 'B8A'. quantity: one of REFLECTANCE_QUANTITIES or
    TEMPERATURE_QUANTITIES. unit: '' (reflectance is dimensionless), 'K' or '°C'. description: a
    band description for the output ('B4 TOA reflectance', 'B10 brightness temperature (K)').
    log_message: what was done and from which keys, for the processing log.
    """

    band: str
    quantity: str
    unit: str
    description: str
    log_message: str
    metadata_path: Path
    gain: float
    offset: float
    planck_k1: float | None = None
    planck_k2: float | None = None
    celsius: bool = False
    clip: bool = False
    invalid_dn: tuple[int, ...] = (0,)

    @property
    def is_reflectance(self) -> bool:
        """True for TOA and surface reflectance."""
        return self.quantity in REFLECTANCE_QUANTITIES

    def apply(self, dn: np.ndarray) -> np.ndarray:
        """Calibrate a block of digital numbers.

        Args:
            dn: DN of any shape and numeric dtype (normally uint16 or uint8 rows × columns).

        Returns:
            float32 array of the same shape: reflectance (clipped to [0, 1] only if clip was
            asked), or temperature in kelvin/°C; NaN for fill/saturated DN and for non-positive
            radiance of thermal bands.
        """
        dn = np.asarray(dn)
        values = dn.astype(np.float64) * self.gain + self.offset
        if self.planck_k1 is not None and self.planck_k2 is not None:
            values = brightness_temperature_k(values, k1=self.planck_k1, k2=self.planck_k2)
        if self.celsius:
            values -= KELVIN_AT_ZERO_CELSIUS
        if self.clip and self.is_reflectance:
            np.clip(values, 0.0, 1.0, out=values)
        if self.invalid_dn:
            values[np.isin(dn, self.invalid_dn)] = np.nan
        return values.astype(np.float32)


def _temperature_unit(celsius: bool) -> str:
    return "°C" if celsius else "K"


def _make_calibrator(
    *,
    band: str,
    quantity: str,
    metadata_path: Path,
    gain: float,
    offset: float,
    how: str,
    celsius: bool,
    clip: bool,
    invalid_dn: dict[int, str],
    planck: tuple[float, float] | None = None,
) -> BandCalibrator:
    """Assemble a calibrator; its description and log message are written here only.
    invalid_dn maps each DN that becomes NaN to what it means ('fill')."""
    is_temperature = quantity in TEMPERATURE_QUANTITIES
    unit = _temperature_unit(celsius) if is_temperature else ""
    description = f"{band} {quantity}" + (f" ({unit})" if unit else "")
    notes = [f"{band}: {quantity}{f' in {unit}' if unit else ''} {how}."]
    notes.append(
        " and ".join(f"DN {value} ({meaning})" for value, meaning in invalid_dn.items())
        + " → NaN."
    )
    if clip and not is_temperature:
        notes.append("Values clipped to [0, 1].")
    elif clip:
        notes.append("Clipping to [0, 1] applies to reflectance only: ignored for this band.")
    return BandCalibrator(
        band=band,
        quantity=quantity,
        unit=unit,
        description=description,
        log_message=" ".join(notes),
        metadata_path=metadata_path,
        gain=gain,
        offset=offset,
        planck_k1=planck[0] if planck else None,
        planck_k2=planck[1] if planck else None,
        celsius=celsius and is_temperature,
        clip=clip and not is_temperature,
        invalid_dn=tuple(invalid_dn),
    )


def _affine_text(multiplier: float, offset: float) -> str:
    """'2e-05·DN − 0.1' for the log."""
    return f"{multiplier:.6g}·DN {'−' if offset < 0 else '+'} {abs(offset):.6g}"


def _sine_of_sun_elevation(metadata: LandsatMetadata) -> float:
    elevation = metadata.sun_elevation_deg
    if elevation is None:
        raise MetadataError(
            f"{metadata.path} has no SUN_ELEVATION, which TOA reflectance needs. Use the complete "
            "metadata file that came with the scene."
        )
    if not 0 < elevation <= 90:
        raise MetadataError(
            f"SUN_ELEVATION is {elevation}° in {metadata.path}: the sun is not above the horizon "
            "(a night scene), so reflectance is undefined. Calibrate thermal bands only, or use "
            "a daytime scene."
        )
    return math.sin(math.radians(elevation))


def _level1_radiance(metadata: LandsatMetadata, band: LandsatBand) -> Rescaling | None:
    """Radiance gain/offset from RADIANCE_MULT/ADD, else from LMAX/LMIN/QCALMAX/QCALMIN."""
    rescaling = metadata.radiance_rescaling(band)
    if rescaling is not None:
        return rescaling
    limits = metadata.radiance_limits(band)
    if limits is None:
        return None
    gain, bias = radiance_rescaling_from_limits(
        limits.lmax, limits.lmin, limits.qcalmax, limits.qcalmin
    )
    return Rescaling(gain, bias, f"{limits.source} (gain (LMAX-LMIN)/(QCALMAX-QCALMIN))")


def _undescribed_band(metadata: LandsatMetadata, band: LandsatBand) -> MetadataError:
    hint = (
        " ETM+ band 6 exists in two gains: ask for B6_VCID_1 (low) or B6_VCID_2 (high)."
        if metadata.sensor == "ETM" and band.number == 6 and band.vcid is None
        else ""
    )
    return MetadataError(
        f"{metadata.path.name} ({metadata.spacecraft} {metadata.sensor}) does not describe band "
        f"{band.name}: none of REFLECTANCE_MULT_BAND_{band.key}, RADIANCE_MULT_BAND_{band.key}, "
        f"RADIANCE_MAXIMUM_BAND_{band.key} or LMAX_BAND{band.legacy_key} is in its Level-1 "
        f"groups.{hint} Check the band number and that the metadata belongs to this band."
    )


def _landsat_thermal(
    metadata: LandsatMetadata, band: LandsatBand, *, celsius: bool, clip: bool
) -> BandCalibrator:
    radiance = _level1_radiance(metadata, band)
    if radiance is None:
        raise _undescribed_band(metadata, band)
    constants = metadata.thermal_constants(band)
    if constants is not None:
        k1, k2, constants_source = constants
    elif (metadata.spacecraft, metadata.sensor) in THERMAL_CONSTANTS_CHANDER_2009:
        k1, k2 = THERMAL_CONSTANTS_CHANDER_2009[(metadata.spacecraft, metadata.sensor)]
        constants_source = "published K1/K2 (Chander et al. 2009; absent from the file)"
    else:
        raise MetadataError(
            f"{metadata.path} has no K1_CONSTANT_BAND_{band.key}/K2_CONSTANT_BAND_{band.key} "
            "for this thermal band. Use the complete metadata file that came with the scene."
        )
    return _make_calibrator(
        band=band.name,
        quantity="brightness temperature",
        metadata_path=metadata.path,
        gain=radiance.multiplier,
        offset=radiance.offset,
        planck=(k1, k2),
        how=(
            f"= K2 / ln(K1 / L + 1) with L = {_affine_text(radiance.multiplier, radiance.offset)}"
            f" from {radiance.source}, K1 = {k1:g}, K2 = {k2:g} from "
            f"{constants_source} ({metadata.path.name})"
        ),
        celsius=celsius,
        clip=clip,
        invalid_dn={0: "fill"},
    )


def _landsat_reflectance(
    metadata: LandsatMetadata, band: LandsatBand, *, clip: bool
) -> BandCalibrator:
    rescaling = metadata.reflectance_rescaling(band)
    if rescaling is not None:
        sine = _sine_of_sun_elevation(metadata)
        return _make_calibrator(
            band=band.name,
            quantity="TOA reflectance",
            metadata_path=metadata.path,
            gain=rescaling.multiplier / sine,
            offset=rescaling.offset / sine,
            how=(
                f"= ({_affine_text(rescaling.multiplier, rescaling.offset)}) / "
                f"sin({metadata.sun_elevation_deg:g}°) from {rescaling.source} and SUN_ELEVATION "
                f"({metadata.path.name})"
            ),
            celsius=False,
            clip=clip,
            invalid_dn={0: "fill"},
        )
    radiance = _level1_radiance(metadata, band)
    if radiance is None:
        raise _undescribed_band(metadata, band)
    esun_table = ESUN_CHANDER_2009.get((metadata.spacecraft, metadata.sensor), {})
    if band.number not in esun_table:
        raise MetadataError(
            f"{metadata.path} has no REFLECTANCE_MULT_BAND_{band.key} and there is no published "
            f"ESUN for {metadata.spacecraft} {metadata.sensor} band {band.number}, so TOA "
            "reflectance cannot be computed. Use a Collection 1/2 product of the scene."
        )
    esun = esun_table[band.number]
    if metadata.earth_sun_distance_au is not None:
        distance, distance_source = metadata.earth_sun_distance_au, "EARTH_SUN_DISTANCE"
    elif metadata.acquisition_date is not None:
        distance = earth_sun_distance_au(metadata.acquisition_date)
        distance_source = f"the acquisition date {metadata.acquisition_date.isoformat()}"
    else:
        raise MetadataError(
            f"{metadata.path} has neither EARTH_SUN_DISTANCE nor DATE_ACQUIRED/ACQUISITION_DATE, "
            "one of which TOA reflectance needs. Use the complete metadata file of the scene."
        )
    factor = math.pi * distance**2 / (esun * _sine_of_sun_elevation(metadata))
    return _make_calibrator(
        band=band.name,
        quantity="TOA reflectance",
        metadata_path=metadata.path,
        gain=radiance.multiplier * factor,
        offset=radiance.offset * factor,
        how=(
            f"= π·L·d² / (ESUN·sin(elevation)) with L = "
            f"{_affine_text(radiance.multiplier, radiance.offset)} from {radiance.source}, "
            f"ESUN = {esun:g} W m-2 um-1 "
            f"(Chander et al. 2009), d = {distance:.6f} AU from {distance_source}, sun elevation "
            f"{metadata.sun_elevation_deg:g}° ({metadata.path.name})"
        ),
        celsius=False,
        clip=clip,
        invalid_dn={0: "fill"},
    )


def _landsat_level2(
    metadata: LandsatMetadata, band: LandsatBand, *, celsius: bool, clip: bool
) -> BandCalibrator:
    if band.product == "SR":
        rescaling = metadata.surface_reflectance_rescaling(band)
        quantity = "surface reflectance"
    else:
        rescaling = metadata.surface_temperature_rescaling(band)
        quantity = "surface temperature"
    return _make_calibrator(
        band=f"B{band.number}",
        quantity=quantity,
        metadata_path=metadata.path,
        gain=rescaling.multiplier,
        offset=rescaling.offset,
        how=(
            f"= {_affine_text(rescaling.multiplier, rescaling.offset)} with the Level-2 scale "
            f"and offset ({rescaling.source}, {metadata.path.name}): the file belongs to the "
            f"Level-2 product {metadata.product_id}, already atmospherically corrected, so the "
            f"result is {quantity}, not a top-of-atmosphere value"
        ),
        celsius=celsius,
        clip=clip,
        invalid_dn={0: "fill"},
    )


def landsat_calibrator(
    metadata: LandsatMetadata,
    band: LandsatBand,
    *,
    celsius: bool = False,
    clip: bool = False,
) -> BandCalibrator:
    """The calibrator of one Landsat band.

    DN files (product 'DN'): TOA reflectance = (M·DN + A) / sin(sun elevation) from the Level-1
    reflectance rescaling; without it ρ = π·L·d² / (ESUN·sin(elevation)) with L from
    RADIANCE_MULT/ADD or LMAX/LMIN/QCALMAX/QCALMIN. Thermal bands: brightness temperature
    T = K2 / ln(K1/L + 1). SR/ST files of Level-2 products: the Level-2 scale and offset.

    Args:
        metadata: the scene's metadata.
        band: the band (legacy two-digit codes are resolved here).
        celsius: temperatures in °C instead of kelvin.
        clip: clip reflectance to [0, 1] (temperatures are never clipped).

    Returns:
        The calibrator.

    Raises:
        MetadataError: the metadata lacks what the band needs, a multiplier is 0, the sun
            elevation is not above 0°, or the metadata does not describe the band.
    """
    band = metadata.resolve_band(band)
    if band.product in ("SR", "ST"):
        return _landsat_level2(metadata, band, celsius=celsius, clip=clip)
    if metadata.is_thermal(band):
        return _landsat_thermal(metadata, band, celsius=celsius, clip=clip)
    return _landsat_reflectance(metadata, band, clip=clip)


def sentinel2_calibrator(
    metadata: Sentinel2Metadata, band: str, *, clip: bool = False
) -> BandCalibrator:
    """The calibrator of one Sentinel-2 band: ρ = (DN + offset) / quantification; TOA reflectance
    for L1C, surface reflectance for L2A; NODATA and SATURATED DN (0, 65535) → NaN.

    Args:
        metadata: the product metadata.
        band: 'B1' … 'B12', 'B8A'.
        clip: clip reflectance to [0, 1].

    Returns:
        The calibrator.

    Raises:
        MetadataError: the product has no image of this band, or its offset list lacks it.
    """
    if metadata.image_bands and band not in metadata.image_bands:
        listed = [
            name for name in sentinel2.SENTINEL2_BANDS if name in metadata.image_bands
        ]
        raise MetadataError(
            f"{metadata.path.name} ({metadata.level}) has no image of band {band}; its bands are "
            f"{', '.join(listed)}. Check the band or the metadata file."
        )
    offset = metadata.offset_for(band)
    offset_source = (
        f"{'RADIO' if metadata.level == 'L1C' else 'BOA'}_ADD_OFFSET"
        if metadata.offsets_in_metadata
        else "no offset list in the metadata, so offset 0"
    )
    level_note = (
        " (Level-2A: surface reflectance, not TOA)" if metadata.level == "L2A" else ""
    )
    return _make_calibrator(
        band=band,
        quantity="TOA reflectance" if metadata.level == "L1C" else "surface reflectance",
        metadata_path=metadata.path,
        gain=1.0 / metadata.quantification,
        offset=offset / metadata.quantification,
        how=(
            f"= (DN {'−' if offset < 0 else '+'} {abs(offset):g}) / "
            f"{metadata.quantification:g}{level_note}, offset from "
            f"{offset_source}, processing baseline {metadata.processing_baseline or 'unknown'} "
            f"({metadata.path.name})"
        ),
        celsius=False,
        clip=clip,
        invalid_dn={metadata.nodata_dn: "NODATA", metadata.saturated_dn: "SATURATED"},
    )


def _refuse_auxiliary_layer(band_path: Path) -> None:
    kind = sentinel2.auxiliary_layer_kind(band_path.name) or (
        landsat.auxiliary_layer_kind(band_path.name)
    )
    if kind is not None:
        raise InvalidInputError(
            f"{band_path.name} is {kind}, not a band of digital numbers that calibrates to "
            "reflectance or temperature. Choose a spectral band file (…_B4.TIF, …_B04.jp2)."
        )


def _refuse_other_mission(band_path: Path, metadata_path: Path, *, is_sentinel2: bool) -> None:
    """A band named like a Landsat product with Sentinel-2 metadata, or the reverse."""
    named_landsat = landsat.LANDSAT_ID_PATTERN.search(band_path.name) is not None
    named_sentinel2 = sentinel2.looks_like_sentinel2(Path(band_path.name))
    if (is_sentinel2 and named_landsat) or (not is_sentinel2 and named_sentinel2):
        mission, other = ("Sentinel-2", "Landsat") if is_sentinel2 else ("Landsat", "Sentinel-2")
        raise MetadataError(
            f"{band_path.name} is named like a {other} file but {metadata_path.name} is {mission} "
            "metadata. Give the metadata file of the band's own product."
        )


def _is_sentinel2_metadata(path: Path) -> bool:
    if path.name.upper().startswith("MTD_MSI") or "MTD_SAFL" in path.name.upper():
        return True
    head = mtl.read_text_file(path)[:4096]
    return "User_Product" in head


def find_metadata(band_path: str | Path) -> Path:
    """The metadata file of a band file, found beside it (Landsat *_MTL.txt/.xml/.json) or up its
    SAFE tree (Sentinel-2 MTD_MSIL1C.xml / MTD_MSIL2A.xml).

    Args:
        band_path: the band file.

    Returns:
        The metadata file.

    Raises:
        MetadataError: none found; the message lists everything looked for.
    """
    band_path = Path(band_path)
    finders = [landsat.find_landsat_mtl, sentinel2.find_sentinel2_metadata]
    if sentinel2.looks_like_sentinel2(band_path):
        finders.reverse()
    elif landsat.landsat_product_id_from_file_name(band_path.name):
        # A Landsat band's metadata lies beside it: searching up the folders for Sentinel-2
        # metadata would only find an unrelated product.
        finders = finders[:1]
    failures = []
    for finder in finders:
        try:
            return finder(band_path)
        except MetadataError as exc:
            failures.append(str(exc))
    raise MetadataError(" ".join(failures))


def calibrator_for(
    band_path: str | Path,
    *,
    metadata_path: str | Path | None = None,
    band: int | str | None = None,
    celsius: bool = False,
    clip: bool = False,
) -> BandCalibrator:
    """The calibrator of a Landsat or Sentinel-2 band file. Does not open the raster.

    Args:
        band_path: the band file; its name gives the band when `band` is None, and decides
            whether it is a Level-2 SR_/ST_ file or a non-reflectance layer (refused).
        metadata_path: the metadata file; found with `find_metadata` when None.
        band: the band when the file name does not tell it (4, 'B4', 'B6_VCID_1', 'SR_B4', 'B8A').
        celsius: temperatures in °C instead of kelvin.
        clip: clip reflectance to [0, 1] (off by default: values outside show calibration or
            atmospheric effects).

    Returns:
        The calibrator; its `apply(dn)` converts blocks to float32 with NaN for fill.

    Raises:
        InvalidInputError: a QA/SCL/AOT/WVP/TCI or other non-reflectance file, or the band cannot
            be told from the file name and was not given.
        MetadataError: metadata missing, unreadable, of another scene, or lacking what the band
            needs (see `landsat_calibrator`, `sentinel2_calibrator`).
    """
    band_path = Path(band_path)
    _refuse_auxiliary_layer(band_path)
    metadata_path = Path(metadata_path) if metadata_path is not None else find_metadata(band_path)
    is_sentinel2 = _is_sentinel2_metadata(metadata_path)
    _refuse_other_mission(band_path, metadata_path, is_sentinel2=is_sentinel2)
    if is_sentinel2:
        s2_metadata = sentinel2.read_sentinel2_metadata(metadata_path)
        s2_metadata.check_band_file(band_path)
        s2_band = (
            sentinel2.parse_sentinel2_band(band)
            if band is not None
            else sentinel2.sentinel2_band_from_file_name(band_path.name)
        )
        if s2_band is None:
            raise InvalidInputError(_band_not_in_name(band_path, "B04, B8A"))
        return sentinel2_calibrator(s2_metadata, s2_band, clip=clip)
    metadata = landsat.read_landsat_metadata(metadata_path)
    metadata.check_band_file(band_path)
    from_name = landsat.landsat_band_from_file_name(band_path.name)
    if band is not None:
        product = from_name.product if from_name is not None else "DN"
        landsat_band = landsat.parse_landsat_band(band, product=product)
    elif from_name is not None:
        landsat_band = from_name
    else:
        raise InvalidInputError(_band_not_in_name(band_path, "B4, B6_VCID_1, SR_B4"))
    return landsat_calibrator(metadata, landsat_band, celsius=celsius, clip=clip)


def _band_not_in_name(band_path: Path, examples: str) -> str:
    return (
        f"Cannot tell the band of {band_path.name} from its name (no band code such as "
        f"{examples}). Give the band explicitly."
    )
