# iseg - convenience targets around CMake. The README's two commands:
#   make demo    set up, build, and run the main job: the default nuclei model (models/) segments
#                the project's sample microscopy image and writes the overlay PNG
#   make test    set up, build, and run the whole test suite
# Run as root on a fresh Debian machine, `make deps` (done by both) installs what is missing.

BUILD      ?= build
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
DEBS        = build-essential cmake pkg-config libyajl-dev libspng-dev libdeflate-dev libjpeg62-turbo-dev
DEBS_TEST   = python3 clang libclang-rt-14-dev python3-torchvision libsimde-dev

MODEL      ?= models/nuclei_compact.safetensors
SAMPLE     ?= examples/data/nuclei_sample.png

.PHONY: all deps build demo demo-eval test test-sanitize fuzz bench clean

all: build

deps:
	@missing=""; for p in $(DEBS) $(DEBS_TEST); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (run 'make deps' as root)"; fi; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/iseg predict $(SAMPLE) --model $(MODEL) --viz $(BUILD)/demo-nuclei.png \
	    --viz-style masks --out $(BUILD)/demo-nuclei.json
	@echo "wrote $(BUILD)/demo-nuclei.png (the masks over the image) and $(BUILD)/demo-nuclei.json (COCO results)"

# the evaluator on the built-in demo detections
demo-eval: build
	$(BUILD)/iseg eval --gt examples/data/demo_gt.json --dt examples/data/demo_results.json \
	    --per-category --plot $(BUILD)/demo-plots --json $(BUILD)/demo-eval.json
	@echo "wrote $(BUILD)/demo-eval.json and $(BUILD)/demo-plots/pr_curves.png"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# the suite once more under AddressSanitizer + UndefinedBehaviorSanitizer, warnings as errors
test-sanitize: deps
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DISEG_WERROR=ON \
	    -DISEG_SANITIZE=address,undefined -DISEG_BUILD_BENCH=OFF
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ISEG_TEST_TIMEOUT_MULTIPLIER=4 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang); FUZZ_SECONDS per target
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=Debug -DISEG_BUILD_FUZZ=ON \
	    -DISEG_BUILD_TESTS=OFF -DISEG_BUILD_BENCH=OFF
	cmake --build $(BUILD)-fuzz -j $(JOBS)
	for t in $(BUILD)-fuzz/fuzz_*; do n=$$(basename $$t); mkdir -p $(BUILD)-fuzz/corpus-$$n; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 $(BUILD)-fuzz/corpus-$$n \
	      tests/fuzz/corpus/$$n || exit 1; done

bench: build
	sh bench/bench_eval.sh $(BUILD)/iseg

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz
