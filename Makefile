# The front door: make demo, make test, make bench, make fuzz.
BUILD ?= build
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DFERRY_WERROR=ON
FUZZ_CMAKE_FLAGS += -DFERRY_WERROR=ON
endif
# The fuzz targets are a separate clang build (docs/architecture.md,
# "Fuzzing"); make test runs each for FUZZ_SMOKE seconds, make fuzz for
# FUZZ_TIME seconds, one after the other.
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang   # anything but clang is a configure error
FUZZ_TIME ?= 300
FUZZ_SMOKE ?= 20
FUZZ_TARGETS := $(patsubst tests/fuzz/target_%.c,%,$(wildcard tests/fuzz/target_*.c))
FUZZ_BIN = $(abspath $(FUZZ_BUILD))/tests/fuzz
ifeq ($(SANITIZE),1)
BUILD := build-asan
CMAKE_FLAGS += -DFERRY_SANITIZE=ON
endif
JOBS ?= $(shell nproc)

.PHONY: all deps build test demo bench clean install fuzz fuzz-build

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# clang is required: without it the configure step fails, it never skips.
fuzz-build: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=$(FUZZ_CC) -DFERRY_FUZZ=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo $(FUZZ_CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) -- --no-print-directory

test: build fuzz-build
	@cmake -S . -B $(BUILD) -DFERRY_FUZZ_BIN=$(FUZZ_BIN) -DFERRY_FUZZ_SMOKE=$(FUZZ_SMOKE) >/dev/null
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Every target for FUZZ_TIME seconds; the corpus grows in $(FUZZ_BUILD)/corpus.
fuzz: fuzz-build
	@failed=; for t in $(FUZZ_TARGETS); do \
		bash tests/fuzz/run.sh $(FUZZ_BIN)/fuzz_$$t $(FUZZ_BIN)/seeds/$$t $(FUZZ_TIME) \
			$(abspath $(FUZZ_BUILD))/corpus/$$t || failed="$$failed $$t"; \
	done; if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX),)

clean:
	rm -rf build build-asan build-fuzz
