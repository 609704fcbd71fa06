# nia-eye-validation: every target runs on Debian's python3 + a venv (.venv)
# that adds pyarrow and this package. `make help` lists the targets.
# The main command, on a fresh Debian 12 machine with Docker: `make validate-all`.
SHELL := /bin/bash
SYSTEM_PYTHON ?= /usr/bin/python3
VENV ?= .venv
PY := $(VENV)/bin/python
NIA ?= $(VENV)/bin/nia
BUILD ?= build
# Every acceptance test, in order: the keys of common/suite/registry.py
# (tests/unit/suite/test_registry.py checks this line and the per-test values below against it).
ALL_TESTS := l2cs rit dfer
# The acceptance tests `make build`, `validate-all` and `save` cover.
TESTS ?= $(ALL_TESTS)

.PHONY: help deps venv test test-fast test-gpu bench clean list-tests

list-tests:  ## print ALL_TESTS, the acceptance tests' keys (scripts/validate reads it)
	@echo $(ALL_TESTS)

help:  ## list the targets
	@grep -hE '^([a-zA-Z0-9_%-]+:.*## |#: )' $(MAKEFILE_LIST) | sed -E 's/^#: ([^ ]+) +/\1:## /' \
	  | awk -F':.*## ' '{printf "  %-28s %s\n", $$1, $$2}'

deps:  ## install every Debian package the suite, its images and its tests use (if missing)
	@scripts/install-system-deps.sh run image test

# The venv needs only the runtime packages; `make test` and the image
# targets add theirs (scripts/install-system-deps.sh GROUP..., idempotent).
$(VENV)/.installed: pyproject.toml requirements-pypi.txt requirements-test.txt scripts/install-system-deps.sh
	@scripts/install-system-deps.sh run
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-pypi.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-test.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	@touch $@

venv: $(VENV)/.installed  ## make .venv (system site packages + pyarrow + this package)

# The fast tier: every test but those that train or build (`slow`) and those
# that need a Docker engine (`docker`); docs/development.md, "Test tiers".
FAST_TIER := not slow and not docker

test: venv  ## run the whole test suite (CPU only): the README's test command
	@scripts/install-system-deps.sh test
	$(PY) -m pytest -q

test-fast: venv  ## the fast tier while you work: no slow (training, image) and no docker tests
	@scripts/install-system-deps.sh test
	$(PY) -m pytest -q -m "$(FAST_TIER)"

test-gpu: venv  ## on a GPU host: the CUDA path (AMP, resume, nccl, reproducible validation) and the three GPU validation speeds against their one-GPU targets
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'make test-gpu: torch sees no CUDA GPU here')"
	$(PY) -m pytest -q -rs -m gpu tests/unit/engine/test_gpu.py
	$(PY) bench/bench_l2cs_valid.py --device cuda --anchor-images 64 --images 1024 --batch-size 64 --workers 4
	$(PY) bench/bench_rit_valid.py --device cuda --anchor-images 64 --images 1024 --batch-size 64
	$(PY) bench/bench_dfer_valid.py --device cuda --anchor-clips 8 --clips 128 --batch-size 16

bench: venv  ## run the benchmarks under bench/ and print their ratios
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:  ## remove build outputs (keeps .venv, the base images and the wheel cache)
	rm -rf $(BUILD)

# ---- Docker images: one docker/Dockerfile for the three tests, parametrised
# by the per-test values below (README "Images"). Nothing is pulled: the
# default base is built here from Debian packages (`make base-offline`), the
# CUDA one from Debian packages plus PyPI's torch wheels (`make base-cuda`);
# with a registry, BASE_IMAGE=$(OFFICIAL_BASE_IMAGE) gives the official stack.
OFFICIAL_BASE_IMAGE := pytorch/pytorch:1.13.1-cuda11.6-cudnn8-runtime
CPU_BASE_IMAGE ?= nia-base:bookworm
# CUDA_STACK=current: the CUDA base on the current PyPI stack (torch 2.x,
# docker/requirements-cuda-current.txt) for GPUs newer than torch 1.13 drives.
CUDA_STACK ?= official
CUDA_SUFFIX := $(if $(filter current,$(CUDA_STACK)),-current)
CUDA_BASE_IMAGE ?= nia-base:bookworm-cuda$(CUDA_SUFFIX)
BASE_IMAGE ?= $(if $(filter 1,$(CUDA)),$(CUDA_BASE_IMAGE),$(CPU_BASE_IMAGE))
# the target that makes BASE_IMAGE here (none for a base from a registry)
BASE_TARGET := $(if $(filter $(CPU_BASE_IMAGE),$(BASE_IMAGE)),base-offline,$(if $(filter $(CUDA_BASE_IMAGE),$(BASE_IMAGE)),base-cuda))
CODE_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CODE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GPU_FLAGS ?= $(shell nvidia-smi >/dev/null 2>&1 && echo --gpus all)
NIA_UID := 1000
# The image build context is the repository: the wheels and the weights to
# bake must be under build/ whatever BUILD says (docker/Dockerfile copies them).
WHEELS_DIR ?= build/wheels
BAKE_DIR ?= build/bake
# Wheels for the PyPI-only packages (and, for a base other than ours, the
# OpenCV/pandas/... pins of docker/requirements-base.txt), per base Python.
OUR_BASE := $(filter nia-base:%,$(BASE_IMAGE))
PYTHONS ?= $(if $(OUR_BASE),3.11,3.10)
WHEEL_SET ?= $(if $(OUR_BASE),pypi,full)
PIP_DOWNLOAD = $(PY) -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
	--platform manylinux2014_x86_64 --python-version $* --dest $(@D)
# The CUDA base: PyPI's torch 1.13.1 (CUDA 11.7 runtime and cuDNN 8.5 come as
# its nvidia-* wheels), fetched once into a cache outside the clone.
WHEEL_CACHE ?= $(HOME)/.cache/nia-wheels
CUDA_WHEELS := $(WHEEL_CACHE)/cuda$(CUDA_SUFFIX)-py3.11
CUDA_REQUIREMENTS := docker/requirements-cuda$(CUDA_SUFFIX).txt
# Every wheel platform the base's glibc (Debian 12: 2.36) runs: pip matches a
# given --platform exactly, and NVIDIA's CUDA 13 wheels are tagged
# manylinux_2_27 (cuBLAS) or manylinux_2_28, torch 1.13.1's manylinux1.
CUDA_WHEEL_PLATFORMS := --platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64 \
	$(foreach v,$(shell seq 17 36),--platform manylinux_2_$(v)_x86_64)

# ---- per-test values, one block per key of ALL_TESTS, as common/suite/registry.py
# declares them (tests/unit/suite/test_registry.py): the image, its source folder and entry script, the
# weights file it reads in /weights, and the demo inputs used when DATA /
# WEIGHTS are not given (data folder; training command writing best.pt).
# the demo crops (l2cs, rit): many people, few frames each (docs/synthetic.md,
# "Demo recipe": 3,840 frames, 24 test subjects)
DEMO_SUBJECTS ?= 240
DEMO_SYNTH_ARGS ?= --videos-per-subject 4 --frames-per-video 4 --size 640x360 --seed 0
DEMO_CROPS := $(BUILD)/crops
DEMO_CLIPS := $(BUILD)/clips
# dfer's synthetic videos and their clip dataset (docs/dfer.md, "Demo recipe"):
# 1,280 phone clips of 16 frames at 320x180 (256 subjects: 25 of them and 125
# clips in the test split; at least 20 test subjects: tests/unit/delivery/test_demo_splits.py), then
# index, split and `nia clips` with their defaults. The demo training reads the
# clips; the dfer image is given the videos (/data), which it indexes, splits
# and clips again itself with the same defaults (the clip index points at
# videos by host paths, which a container does not have).
DEMO_SYNTH_DFER := $(BUILD)/synth_dfer
DFER_SYNTH_ARGS ?= --subjects 256 --videos-per-subject 5 --frames-per-video 16 --size 320x180 --devices S --seed 0

# Per model: its image, folder, validation entry point, weights file, demo data (what its image is
# given) and demo training (train.py with the demo preset on the CPU, reading TRAIN_DATA).
# $(call model_vars,MODEL,DIR,ENTRY,WEIGHTS_FILE,DEMO_DATA,TRAIN_DATA)
define model_vars
$(1)_IMAGE := nia_demo_$(1)
$(1)_DIR := $(2)
$(1)_ENTRY := $(2)/$(3)
$(1)_WEIGHTS_FILE := $(4)
$(1)_DEMO_DATA := $(5)
$(1)_TRAIN := $(2)/train.py
$(1)_DEMO_TRAIN_ARGS := --preset demo --device cpu --data $(6) --out $(BUILD)/train/$(1)_demo
endef
$(eval $(call model_vars,l2cs,l2cs,run_valid_l2cs.py,l2cs.pt,$(DEMO_CROPS),$(DEMO_CROPS)))
$(eval $(call model_vars,rit,ritnet,test.py,ritnet.pt,$(DEMO_CROPS),$(DEMO_CROPS)))
$(eval $(call model_vars,dfer,dfer,valid_nia.py,dfer.pt,$(DEMO_SYNTH_DFER),$(DEMO_CLIPS)))

# Images on the current stack's CUDA base are tagged apart (nia_demo_rit:cuda-current), so that they
# never replace the official stack's (nia_demo_rit, i.e. :latest); validate-*, save-* follow the tag.
# A <test>_IMAGE given on the command line is taken as it is.
IMAGE_TAG ?= $(if $(filter nia-base:bookworm-cuda-current,$(BASE_IMAGE)),:cuda-current)
$(foreach t,l2cs rit dfer,$(eval $(t)_IMAGE := $($(t)_IMAGE)$(IMAGE_TAG)))

# Demo training on the CPU with fixed thread counts and CPU kernels (OpenMP,
# OpenBLAS, ATen, oneDNN, MKL: common/pinned_env.py, which overrides what the
# shell exports): float sums depend on how the work is split and which kernels
# run, and training amplifies that (1 thread gives 9.24 deg where 2 give
# 8.69), so the demo weights are the same bytes on any x86-64 machine with
# AVX2, whatever its core count (docs/reproducibility.md).
DEMO_TRAIN_ENV ?= $(PY) -m common.pinned_env

# The inputs of test $(1): DATA, else $(1)_DATA, else the demo data;
# WEIGHTS (one test only), else $(1)_WEIGHTS, else WEIGHTS_DIR/<its file>,
# else the demo weights (trained here). *_given: the user named them.
data_for = $(or $(DATA),$($(1)_DATA),$($(1)_DEMO_DATA))
weights_given = $(or $(WEIGHTS),$($(1)_WEIGHTS),$(if $(WEIGHTS_DIR),$(WEIGHTS_DIR)/$($(1)_WEIGHTS_FILE)))
weights_for = $(or $(call weights_given,$(1)),$(BUILD)/weights/$(1)_demo.pt)
# what test $(1) makes here: the demo data unless DATA is given, the demo weights unless weights are given
demo_inputs = $(if $(DATA)$($(1)_DATA),,$(call demo_data_target,$($(1)_DEMO_DATA))) $(if $(call weights_given,$(1)),,$(BUILD)/weights/$(1)_demo.pt)
demo_data_target = $(if $(filter $(DEMO_SYNTH_DFER),$(1)),$(DEMO_CLIPS)/index.parquet,$(DEMO_CROPS)/index.parquet)

.PHONY: venv-current test-current base-offline base-cuda cuda-wheels wheels demo-data demo-weights build validate-all save load

base-offline:  ## build the CPU base image nia-base:bookworm from Debian packages, no registry (as root, else sudo; FORCE=1 rebuilds)
	@scripts/install-system-deps.sh image
	@$$([ "$$(id -u)" = 0 ] || echo sudo) env IMAGE=$(CPU_BASE_IMAGE) CACHE_DIR=$(BUILD)/base FORCE=$(FORCE) docker/base-offline.sh

$(CUDA_WHEELS)/.fetched: $(CUDA_REQUIREMENTS) | $(VENV)/.installed
	@mkdir -p $(@D)
	$(PY) -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
	  $(CUDA_WHEEL_PLATFORMS) --python-version 3.11 --dest $(@D) -r $(CUDA_REQUIREMENTS)
	@touch $@

cuda-wheels: $(CUDA_WHEELS)/.fetched  ## fetch torch 1.13.1 + its CUDA 11.7/cuDNN 8.5 wheels (CUDA_STACK=current: torch 2.15.0, CUDA 13.2) into WHEEL_CACHE (~/.cache/nia-wheels)

# The current PyPI stack (README "Tested versions"): a venv without Debian's
# packages, made as the README says for PyPI machines (`pip install -e
# ".[torch,test,suite]"`: the newest torch, click, OpenCV, pandas, safetensors
# beside NumPy < 2). Its wheels (3.5 GB, torch's CUDA wheels included) are
# fetched once into WHEEL_CACHE, outside the clone, and installed from there;
# they are fetched again when pyproject.toml changes (or after
# `rm -r $(CURRENT_WHEELS)`, to take newer releases).
CURRENT_VENV ?= .venv-current
CURRENT_WHEELS := $(WHEEL_CACHE)/current-py3.11
CURRENT_EXTRAS := .[torch,test,suite]

$(CURRENT_WHEELS)/.fetched: pyproject.toml
	@mkdir -p $(@D)
	$(SYSTEM_PYTHON) -m pip download --quiet --disable-pip-version-check --dest $(@D) "$(CURRENT_EXTRAS)" \
	  "setuptools>=66" wheel
	rm -f $(@D)/nia[-_]eye[-_]validation*
	@touch $@

$(CURRENT_VENV)/.installed: $(CURRENT_WHEELS)/.fetched
	rm -rf $(CURRENT_VENV)
	$(SYSTEM_PYTHON) -m venv $(CURRENT_VENV)
	$(CURRENT_VENV)/bin/pip install --quiet --disable-pip-version-check --no-index --find-links $(CURRENT_WHEELS) \
	  -e "$(CURRENT_EXTRAS)"
	@touch $@

venv-current: $(CURRENT_VENV)/.installed  ## make .venv-current: the current PyPI stack (pip install -e ".[torch,test,suite]", wheels cached in ~/.cache/nia-wheels)

test-current: venv-current  ## the fast tier and a three-test end-to-end run (scripts/stack-smoke.sh) on the current PyPI stack
	$(CURRENT_VENV)/bin/python -m pytest -q -m "$(FAST_TIER)"
	scripts/stack-smoke.sh $(CURRENT_VENV)

base-cuda: base-offline cuda-wheels  ## build nia-base:bookworm-cuda: the Debian base + PyPI's CUDA torch, from local wheels (CUDA_STACK=current: torch 2.x, nia-base:bookworm-cuda-current; FORCE=1 rebuilds)
	@if [ "$(FORCE)" != 1 ] && docker image inspect $(CUDA_BASE_IMAGE) >/dev/null 2>&1; then \
	  echo "[base-cuda] $(CUDA_BASE_IMAGE) exists (FORCE=1 rebuilds it)" >&2; \
	else \
	  cp $(CUDA_REQUIREMENTS) $(CUDA_WHEELS)/requirements-cuda.txt && \
	  docker build --file docker/base-cuda.Dockerfile --tag $(CUDA_BASE_IMAGE) \
	    --build-arg BASE_IMAGE=$(CPU_BASE_IMAGE) $(CUDA_WHEELS); \
	fi

wheels: $(foreach v,$(PYTHONS),$(WHEELS_DIR)/py$(v)/.$(WHEEL_SET))  ## fetch the wheels the images install offline (PYTHONS="3.11 3.10")

# The image installs requirements-pypi.txt less its host-only lines.
$(WHEELS_DIR)/py%/.pypi: requirements-pypi.txt | $(VENV)/.installed
	@mkdir -p $(@D)
	grep -v host-only requirements-pypi.txt >$(@D)/requirements-image.txt
	$(PIP_DOWNLOAD) -r $(@D)/requirements-image.txt
	@touch $@

$(WHEELS_DIR)/py%/.full: requirements-pypi.txt docker/requirements-base.txt | $(VENV)/.installed
	@mkdir -p $(@D)
	grep -v host-only requirements-pypi.txt >$(@D)/requirements-image.txt
	$(PIP_DOWNLOAD) -r $(@D)/requirements-image.txt $$(awk '!/^#/ && NF { print $$2 }' docker/requirements-base.txt)
	@touch $@

$(DEMO_CROPS)/index.parquet: | $(VENV)/.installed
	rm -rf $(BUILD)/synth $(DEMO_CROPS)
	$(NIA) synth $(BUILD)/synth --subjects $(DEMO_SUBJECTS) $(DEMO_SYNTH_ARGS)
	$(NIA) index $(BUILD)/synth --out $(BUILD)/manifest.parquet
	$(NIA) split $(BUILD)/manifest.parquet
	$(NIA) crops $(BUILD)/manifest.parquet $(DEMO_CROPS)

$(DEMO_CLIPS)/index.parquet: | $(VENV)/.installed
	rm -rf $(DEMO_SYNTH_DFER) $(DEMO_CLIPS)
	$(NIA) synth $(DEMO_SYNTH_DFER) $(DFER_SYNTH_ARGS)
	$(NIA) index $(DEMO_SYNTH_DFER) --out $(BUILD)/manifest_dfer.parquet
	$(NIA) split $(BUILD)/manifest_dfer.parquet
	$(NIA) clips $(BUILD)/manifest_dfer.parquet $(DEMO_CLIPS)

demo-data: $(sort $(foreach t,$(TESTS),$(call demo_data_target,$($(t)_DEMO_DATA))))  ## the synthetic datasets of TESTS: crops (build/crops), videos and clips (build/synth_dfer, build/clips)

demo-weights: $(foreach t,$(TESTS),demo-weights-$(t))  ## train the demo weights of TESTS on the synthetic data (build/weights/*_demo.pt)

build: $(foreach t,$(TESTS),build-$(t))  ## build the images of TESTS (nia_demo_l2cs, nia_demo_rit, nia_demo_dfer)

# One test's targets; $(1) = l2cs, rit or dfer. A test whose entry point
# (or, for its demo weights, training script) has not landed stops with one
# line naming the missing file, exit 2.
#: build-<test>             build one image of ALL_TESTS (BASE_IMAGE=... or CUDA=1; BAKE=1 bakes WEIGHTS or the demo weights in)
#: validate-<test>          run one image on DATA with WEIGHTS (demo ones by default) into RESULTS (build/results/<test>)
#: demo-weights-<test>      train one test's demo weights on the synthetic data
#: save-<test>              write IMAGES_DIR/nia_demo_<test>.tar (no SHA256SUMS: `make save` writes it)
define test_targets
.PHONY: entry-$(1) build-$(1) validate-$(1) save-$(1) demo-weights-$(1)

entry-$(1):
	@test -f $($(1)_ENTRY) || { echo "$($(1)_ENTRY) not found: the $(1) entry point is not in this checkout yet, so nothing of $(1) can be built or run" >&2; exit 2; }

$(BUILD)/weights/$(1)_demo.pt: | $(call demo_data_target,$($(1)_DEMO_DATA))
	@test -f $($(1)_TRAIN) || { echo "$($(1)_TRAIN) not found: the $(1) training script is not in this checkout yet, so no $(1) demo weights" >&2; exit 2; }
	$(DEMO_TRAIN_ENV) $(PY) $($(1)_TRAIN) $($(1)_DEMO_TRAIN_ARGS)
	@mkdir -p $$(@D)
	cp $(BUILD)/train/$(1)_demo/best.pt $$@

demo-weights-$(1): $(BUILD)/weights/$(1)_demo.pt

build-$(1): entry-$(1) $(BASE_TARGET) wheels $(if $(filter 1,$(BAKE)),$(if $(call weights_given,$(1)),,$(BUILD)/weights/$(1)_demo.pt))
	$(call docker_build,$(1))

validate-$(1): entry-$(1) build-$(1) $(call demo_inputs,$(1))
	$(call docker_validate,$(1),$(call data_for,$(1)),$(call weights_for,$(1)),$(or $(RESULTS),$(BUILD)/results/$(1)))

save-$(1): build-$(1)
	$(call docker_save,$(1))
endef

# $(1) = test key. The weights to bake (BAKE=1) or none go to
# build/bake/<dir>/ with a BAKED line that the image's --self-check reads.
define docker_build
	@rm -rf $(BAKE_DIR)/$($(1)_DIR) && mkdir -p $(BAKE_DIR)/$($(1)_DIR)
	@if [ "$(BAKE)" = 1 ]; then \
	  cp $(call weights_for,$(1)) $(BAKE_DIR)/$($(1)_DIR)/$($(1)_WEIGHTS_FILE) && \
	  echo "$($(1)_WEIGHTS_FILE) $$$$(sha256sum <$(BAKE_DIR)/$($(1)_DIR)/$($(1)_WEIGHTS_FILE) | cut -d' ' -f1)" \
	    >$(BAKE_DIR)/$($(1)_DIR)/BAKED; \
	else echo none >$(BAKE_DIR)/$($(1)_DIR)/BAKED; fi
	docker build --file docker/Dockerfile --tag $($(1)_IMAGE) \
	  --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg TEST_DIR=$($(1)_DIR) \
	  --build-arg ENTRY=$($(1)_ENTRY) --build-arg WEIGHTS_FILE=$($(1)_WEIGHTS_FILE) \
	  --build-arg IMAGE_TITLE=$($(1)_IMAGE) --build-arg NIA_CODE_VERSION=$(CODE_VERSION) \
	  --build-arg NIA_CODE_REVISION=$(CODE_REVISION) \
	  --build-arg BASE_DIGEST="$$$$(docker image inspect --format '{{.Id}}' $(BASE_IMAGE) 2>/dev/null || echo unknown)" \
	  --build-arg BAKED_WEIGHTS="$$$$(cat $(BAKE_DIR)/$($(1)_DIR)/BAKED)" .
endef

# $(1) = test key, $(2) data, $(3) weights file, $(4) results folder.
# Mounts the data and the folder of the weights read-only; the results folder
# gets the results, owned by the caller (as root: by the image's user), and
# the filed report (RESULTS/report/report.html|md|json), on FAIL too. Only
# this run's results are filed: the results and report of an earlier run are
# removed first, the run gets a fresh RUN_ID (NIA_RUN_ID, written into its
# metrics.json) and `nia report --run-id` refuses any other; a run that
# leaves no metrics.json (it stopped) gets no report; the report's verdict
# lines are not printed (the container printed its own; a report that
# disagrees says so on stderr). Missing data, weights or image: one line, exit 2,
# before docker can create a missing mount as root or pull an image. The container's exit
# code (0 PASS, 1 FAIL, 2 no verdict) is the recipe's; make itself exits 2
# whenever a recipe fails (GNU make has no way to exit 1 for a FAIL), so
# EXIT_FILE=F, when given, gets the recipe's 0/1/2: scripts/validate reads it.
EXIT_FILE ?=
ifndef RUN_ID
RUN_ID := $(shell date -u +%Y%m%dT%H%M%SZ-$$(od -An -N4 -tx4 /dev/urandom | tr -d ' '))
endif
define docker_validate
	@[ -e $(2) ] || { echo "$(2): not found: no $(1) data there (DATA or $(1)_DATA); nothing was run" >&2; exit 2; }
	@$(if $(findstring --predictions,$(ARGS)),true,[ -f $(3) ]) || \
	  { echo "$(3): not found: no $(1) weights file there; nothing was run" >&2; exit 2; }
	@docker image inspect $($(1)_IMAGE) >/dev/null 2>&1 || \
	  { echo "image $($(1)_IMAGE) not found: build it with make build-$(1) or load it with make load" >&2; exit 2; }
	@mkdir -p $(4)
	@rm -rf $(4)/metrics.json $(4)/per_sample.csv $(4)/overlays $(4)/report
	@if [ "$$$$(id -u)" = 0 ]; then chown $(NIA_UID):$(NIA_UID) $(4); fi
	docker run --pull never --rm --network none --cap-drop ALL --security-opt no-new-privileges $(GPU_FLAGS) $$$$([ "$$$$(id -u)" = 0 ] || echo --user "$$$$(id -u):$$$$(id -g)") \
	  --volume $(abspath $(2)):/data:ro \
	  --volume $(abspath $(dir $(3))):/weights:ro --env NIA_WEIGHTS=$(notdir $(3)) \
	  --env NIA_RUN_ID=$(RUN_ID) --volume $(abspath $(4)):/results \
	  $($(1)_IMAGE) $(ARGS); \
	status=$$$$?; \
	if [ -f $(4)/metrics.json ]; then \
	  $(NIA) report $(4) --out $(4)/report --run-id $(RUN_ID) >/dev/null; \
	  [ ! -f $(4)/report/report.html ] || echo "report: $(4)/report/report.html (also report.md, report.json)"; \
	fi; \
	$(if $(EXIT_FILE),echo $$$$status >$(EXIT_FILE);) exit $$$$status
endef

IMAGES_DIR ?= $(BUILD)/images
# The tag is named (:latest when none is): `docker save NAME` would save every tag of NAME.
define docker_save
	@mkdir -p $(IMAGES_DIR)
	docker save --output $(IMAGES_DIR)/$($(1)_IMAGE).tar.part $($(1)_IMAGE)$(if $(findstring :,$($(1)_IMAGE)),,:latest)
	mv $(IMAGES_DIR)/$($(1)_IMAGE).tar.part $(IMAGES_DIR)/$($(1)_IMAGE).tar
endef

# Defined after docker_build/docker_validate/docker_save, which they call.
$(foreach t,$(ALL_TESTS),$(eval $(call test_targets,$(t))))

# Runs every test of TESTS even when one fails or cannot run, then files ONE
# report of the results this run wrote (build/results/report) and prints the
# verdict table. The suite's exit code (0 all PASS, 1 a FAIL, 2 no verdict) is
# the table's last line and build/results/.suite/exit (and EXIT_FILE, when
# given); make itself exits 0 when every test passed, else 2.
# Each test's exit code (its container's 0/1/2, else make's 2) and stderr are
# kept in build/results/.suite/ for the table.
# First, side by side: the base and the images (mostly downloads, dpkg and
# Docker commits; log in build/results/.suite/images.log) and the demo data and
# demo weights (CPU) that the tests need; nothing there stops the run: each
# test's own `validate-<test>` below makes whatever is still missing and says
# why when it cannot.
SUITE_DIR := $(BUILD)/results/.suite
suite_inputs = $(sort $(foreach t,$(TESTS),$(call demo_inputs,$(t))))
validate-all: $(VENV)/.installed  ## run the validations of TESTS (never stops at the first failure), one report, the verdict table
	@$(if $(WEIGHTS),echo "validate-all: WEIGHTS names one file; give WEIGHTS_DIR=DIR (with l2cs.pt, ritnet.pt, dfer.pt) or l2cs_WEIGHTS=... rit_WEIGHTS=... dfer_WEIGHTS=..." >&2; exit 2)
	@$(if $(RESULTS),echo "validate-all: RESULTS is per test; the results go to $(BUILD)/results/<test>" >&2; exit 2)
	@rm -rf $(SUITE_DIR) $(BUILD)/results/report && mkdir -p $(SUITE_DIR)
	@# a password prompt cannot reach a background job: ask now when the base will need sudo
	@if [ "$$(id -u)" != 0 ] && [ -n "$(BASE_TARGET)" ] && ! docker image inspect $(BASE_IMAGE) >/dev/null 2>&1; then sudo -v; fi
	@echo "== the images (log: $(SUITE_DIR)/images.log), beside the demo data and weights" >&2; \
	( for t in $(TESTS); do $(MAKE) --no-print-directory build-$$t || echo "build-$$t: failed"; done ) \
	  >$(SUITE_DIR)/images.log 2>&1 & images=$$!; \
	$(if $(strip $(suite_inputs)),$(MAKE) --no-print-directory --keep-going $(suite_inputs) || true;) \
	wait $$images
	@for t in $(TESTS); do \
	  rm -rf $(BUILD)/results/$$t/metrics.json $(BUILD)/results/$$t/per_sample.csv $(BUILD)/results/$$t/report; \
	  echo "== validate-$$t" >&2; \
	  $(MAKE) --no-print-directory validate-$$t RUN_ID=$(RUN_ID) EXIT_FILE=$(SUITE_DIR)/$$t.exit \
	    2> >(tee $(SUITE_DIR)/$$t.stderr >&2); \
	  status=$$?; [ -s $(SUITE_DIR)/$$t.exit ] || echo $$status >$(SUITE_DIR)/$$t.exit; \
	done; \
	ran=$$(for t in $(TESTS); do [ -f $(BUILD)/results/$$t/metrics.json ] && echo $(BUILD)/results/$$t; done); \
	if [ -n "$$ran" ]; then $(NIA) report $$ran --out $(BUILD)/results/report --run-id $(RUN_ID) >/dev/null || true; fi; \
	$(NIA) suite table $(BUILD)/results --tests "$(TESTS)"; code=$$?; \
	echo $$code >$(SUITE_DIR)/exit; $(if $(EXIT_FILE),echo $$code >$(EXIT_FILE);) exit $$code

save: $(foreach t,$(TESTS),save-$(t))  ## write IMAGES_DIR/nia_demo_<test>.tar for TESTS (default build/images) + SHA256SUMS
	cd $(IMAGES_DIR) && sha256sum $(foreach t,$(TESTS),$($(t)_IMAGE).tar) >SHA256SUMS.part && mv SHA256SUMS.part SHA256SUMS
	@cat $(IMAGES_DIR)/SHA256SUMS

load:  ## check IMAGES_DIR/SHA256SUMS, then docker load every image it lists
	cd $(IMAGES_DIR) && sha256sum --check --strict SHA256SUMS
	@cd $(IMAGES_DIR) && for tar in $$(awk '{ sub(/^\*/, "", $$2); print $$2 }' SHA256SUMS); do \
	  echo "docker load --input $(IMAGES_DIR)/$$tar"; docker load --input $$tar || exit 1; done
