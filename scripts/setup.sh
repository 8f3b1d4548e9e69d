#!/usr/bin/env bash
# Make this machine able to run the plugin's tests, demo and benchmarks (Debian 12, as root).
# Fast when everything is already there: a dpkg query and a stamp file.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-sklearn
                 python3-scipy python3-venv python3-pip
                 python3-skimage  # the colour-difference oracle of the palette test
                 xvfb             # a virtual screen for the QGIS desktop tests (tests/gui)
                 python3-dask python3-distributed)  # the optional Dask executor, for its tests
missing=()
for package in "${DEBIAN_PACKAGES[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv sees Debian's QGIS, GDAL and numpy 1.24; the constraint stops pip from pulling numpy 2,
# which GDAL's bindings are not built for.
stamp=".venv/.installed-$(sha1sum requirements-dev.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "Creating .venv with the test tools"
  /usr/bin/python3 -m venv --system-site-packages .venv
  numpy_version=$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt \
    "numpy==${numpy_version}"
  touch "$stamp"
fi
