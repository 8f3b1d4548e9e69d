# make demo · make test · make bench · make package
PYTHON := .venv/bin/python
export QT_QPA_PLATFORM := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test demo bench package lint clean

setup:
	@scripts/setup.sh

test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PYTHON) scripts/demo.py demo-output

bench: setup
	bench/setup_peers.sh
	$(PYTHON) bench/run.py $(BENCH_CASES)

package:
	@scripts/package.sh

clean:
	rm -rf demo-output dist bench/work

lint: setup
	.venv/bin/ruff check .
