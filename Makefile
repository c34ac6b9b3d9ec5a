# Two entry points for a newcomer: `make demo` (install + run the built-in example) and `make test`.
# pip + venv on purpose: torch is pinned to the CPU build 2.13.0, installed first so nothing pulls a CUDA build.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
FASHION = /usr/share/datasets/fashion-mnist
# Debian's word lists (package:file under /usr/share/dict): the built-in text example langid
WORDLISTS = wamerican:american-english wngerman:ngerman wfrench:french wspanish:spanish witalian:italian \
            wportuguese:portuguese wdutch:dutch

.PHONY: install demo test data clean

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements/lock.txt -e '.[all,dev]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST and the word lists come from Debian's packages (no download at run time).
data:
	@test -d $(FASHION) || { echo "installing Debian package dataset-fashion-mnist"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist'; }
	@need=""; for pair in $(WORDLISTS); do test -f /usr/share/dict/$${pair#*:} || need="$$need $${pair%%:*}"; done; \
	test -z "$$need" || { echo "installing Debian packages$$need"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c "apt-get update -qq && apt-get install -y -qq$$need"; }

demo: install data
	$(VENV)/bin/edgedistill build --target android --out runs/demo

# The suite in worker processes (pytest-xdist), one per core up to 4; each test module stays on one worker, so a
# module's shared fixture (a trained run) is built once. `$(PY) -m pytest` alone runs it in one process.
test: install
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadscope

clean:
	rm -rf $(VENV) runs .pytest_cache
