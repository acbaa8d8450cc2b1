# Ryzanstein build. Targets: all run test bench coverage clean (see README).
# Optional: CUDA=1 (CUDA backend, needs /usr/local/cuda), COVERAGE=1.
ifeq ($(origin CC),default)
CC      := gcc
endif
CUDA    ?= 0
BUILD   ?= build
NP      ?= 2
MPIRUN  ?= mpirun --allow-run-as-root --oversubscribe
CUDA_HOME ?= /usr/local/cuda

PKGS     := ompi-c openblas hdf5
DEPS_OK  := $(shell pkg-config --exists $(PKGS) check 2>/dev/null && echo 1)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Iinclude -MMD -MP
LDLIBS   := -lm

ifeq ($(DEPS_OK),1)
CFLAGS   += $(shell pkg-config --cflags $(PKGS))
LDLIBS   := $(shell pkg-config --libs $(PKGS)) -lm -pthread
endif

ifeq ($(COVERAGE),1)
CFLAGS   += --coverage -O0
LDFLAGS  += --coverage
endif

# SAN=1: AddressSanitizer and UndefinedBehaviorSanitizer (make test-sanitize).
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif

# CUDA=1: the cuda backend (kernels/*.cu by nvcc, src/backend/cuda.c) and the
# nccl comm (src/comm/nccl.c); without it those files build to stubs. SASS
# for A100 (sm_80) and H100 (sm_90), plus sm_90 PTX that the driver compiles
# for newer GPUs. Host code of the kernels gets the C files' warnings;
# nvcc's host code needs the C++ runtime (-lstdc++) when gcc links.
ifeq ($(CUDA),1)
NVCC     ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -O2 -g
NVCCFLAGS += -std=c++17 $(CUDA_ARCH) -Iinclude -Werror all-warnings \
             -Xcompiler -Wall,-Wextra,-Werror -MMD -MP
CFLAGS   += -DRYZ_WITH_CUDA -I$(CUDA_HOME)/include
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lnccl -lstdc++
CU_SRC   := $(wildcard kernels/*.cu)
CU_OBJ   := $(CU_SRC:kernels/%.cu=$(BUILD)/obj/kernels/%.o)
endif

LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o) $(CU_OBJ)
TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libryz.a

.DEFAULT_GOAL := all
.PHONY: all deps deps-check run test test-sanitize fuzz bench coverage clean format golden \
  gpu-bundle sass-check FORCE

# The git revision recorded in results; meta.o rebuilds when it changes.
GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(BUILD)/gitrev: FORCE
	@mkdir -p $(BUILD); echo '$(GIT_REV)' | cmp -s - $@ || echo '$(GIT_REV)' > $@
$(BUILD)/obj/results/meta.o: $(BUILD)/gitrev
$(BUILD)/obj/results/meta.o: CFLAGS += -DRYZ_GIT_REV='"$(GIT_REV)"'


all: deps-check $(BUILD)/ryz

# Installs what is missing (idempotent), then re-enters make so pkg-config
# flags are read with the packages present.
deps:
	@bash scripts/install-deps.sh

deps-check:
	@test "$(DEPS_OK)" = 1 || { echo "missing dependencies: run 'make deps' (scripts/install-deps.sh)" >&2; exit 2; }

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/kernels/%.o: kernels/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ryz: $(BUILD)/obj/cli/main.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) $< $(LIB) -o $@ $(LDFLAGS) \
	  $(shell pkg-config --libs check) $(LDLIBS)

# The main job: suite, then the report (with its plots) from its results file.
RUN_OUT ?= results/quick
run: deps
	@$(MAKE) --no-print-directory $(BUILD)/ryz
	$(BUILD)/ryz suite suites/quick.ini -o $(RUN_OUT).h5
	$(BUILD)/ryz report $(RUN_OUT).h5 -o $(RUN_OUT)-report >/dev/null
	@echo "results: $(RUN_OUT).h5   report and plots (PNG, SVG): $(RUN_OUT)-report/report.md"

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/ryz $(TESTS)
	@bash tests/run.sh $(BUILD)

# Issue 10's figures, each printed beside its target: TP=1 decode against the
# bandwidth roofline and prefill against sgemm (f32 and bf16, 1 and 2
# threads), TP=2 scaling and collectives in situ against ryz comm
# (suites/bench-tp2.ini), the comm wrapper's overhead. A benchmark reports;
# a target missed fails the target only with BENCH_STRICT=1 (a wrong output,
# exit 2 or more, always fails).
BENCH_REPEAT ?= 7
bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/ryz
	$(BUILD)/ryz bench --model synthetic:110m --threads 1,2 --dtype f32,bf16 \
	  --repeat $(BENCH_REPEAT) -o results/bench-110m.h5
	@st=0; $(BUILD)/ryz suite suites/bench-tp2.ini -o results/bench-tp2.h5 || st=$$?; \
	  if [ $$st -gt 1 ] || { [ $$st = 1 ] && [ "$(BENCH_STRICT)" = 1 ]; }; then exit $$st; fi
	bash scripts/bench-comm.sh $(BUILD)

coverage: deps
	@$(MAKE) --no-print-directory BUILD=build-cov COVERAGE=1 build-cov/ryz \
	  $(TESTS:$(BUILD)/%=build-cov/%)
	@bash tests/run.sh build-cov
	@bash scripts/coverage.sh build-cov

# Everything built with ASan and UBSan in build-san, then every test. Leak
# detection is off: Open MPI's own allocations are reported as leaks.
test-sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-san SAN=1 build-san/ryz \
	  $(TESTS:$(BUILD)/%=build-san/%)
	@ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  bash tests/run.sh build-san

# libFuzzer harnesses, one per checkpoint parser (tests/fuzz/fuzz_*.c), each
# run for FUZZ_RUNS inputs from its seed corpus tests/corpus/<parser>/ (new
# inputs go to build-fuzz/corpus-<parser>/).
FUZZ_RUNS ?= 20000
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SRC  := $(wildcard src/ckpt/*.c src/core/*.c)
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(wildcard src/ckpt/*.h include/ryz/*.h tests/fuzz/*.h)
	@mkdir -p build-fuzz
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iinclude $< $(FUZZ_SRC) -o $@ -lm -pthread

fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do p=$${f#build-fuzz/fuzz_}; mkdir -p build-fuzz/corpus-$$p; \
	  echo "=== fuzz $$p (log: build-fuzz/$$p.log)"; \
	  $$f -runs=$(FUZZ_RUNS) build-fuzz/corpus-$$p tests/corpus/$$p >build-fuzz/$$p.log 2>&1 \
	  || { tail -n 40 build-fuzz/$$p.log; exit 1; }; tail -n 1 build-fuzz/$$p.log; done

# The archive a GPU machine without MPI or HDF5 runs (docs/gpu.md): the
# CUDA build's binaries, Open MPI's launcher and every library they load.
gpu-bundle: deps
	bash scripts/gpu-bundle.sh

# PDL's read-only loads after the wait, checked in the kernels' sm_90 SASS
# (scripts/sass-check.sh; SKIP without cuobjdump). Its objects are the CUDA
# build's, so BUILD means build-cuda here unless given.
sass-check:
	@BUILD='$(if $(filter command line environment,$(origin BUILD)),$(BUILD),build-cuda)' \
	  CUDA_HOME='$(CUDA_HOME)' bash scripts/sass-check.sh

# Regenerates reference/ (a deliberate act: review and commit the diff).
golden: $(BUILD)/tests/test_golden
	$(BUILD)/tests/test_golden --write reference

format:
	clang-format -i src/*/*.c include/ryz/*.h tests/*.c

clean:
	rm -rf build build-cov build-san build-fuzz build-cuda .gpu

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
