# Set-up, tests and the demo. Each target builds the project venv by itself on a fresh machine.
#   make test                 # the whole suite (CPU, offline)
#   make demo                 # the pipeline end to end on the embedded default data, tiny model
#   make TORCH_SPEC='torch==2.14.1' test   # another torch (e.g. a CUDA build on a GPU machine)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test demo bench clean system-packages

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# Debian packages the suite and the demo use: bubblewrap, libseccomp2, util-linux (setpriv) and python3 (the
# evaluation sandbox: its namespaces, its seccomp filter, its unprivileged uid and the interpreter every user may
# read; without them generated code is never run; gcc, when present, builds the sandbox tests' C programs),
# slurm-wlm + munge (the real-SLURM tests start a private one-node SLURM; without them they skip with the reason),
# and Go and Rust with the libraries HumanEval-X's tests use (the evaluation calls Debian's /usr/bin/go,
# /usr/bin/rustc and /usr/bin/cargo, offline; without them the Go/Rust tests skip with the reason).
# Installed when missing, as root with apt-get only, quietly.
SYSTEM_PACKAGES := bubblewrap libseccomp2 util-linux python3 slurm-wlm munge golang-go \
	golang-github-stretchr-testify-dev rustc cargo librust-rand-dev librust-regex-dev librust-regex+default-dev \
	librust-md5-dev
system-packages:
	@export PATH="$$PATH:/usr/sbin:/sbin"; \
	if ! { command -v bwrap && command -v setpriv && test -x /usr/bin/python3 && ldconfig -p | grep -q 'libseccomp\.so\.2' \
	       && command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch \
	       && test -x /usr/bin/go && test -x /usr/bin/rustc && test -x /usr/bin/cargo \
	       && test -d /usr/share/gocode/src/github.com/stretchr/testify \
	       && ls -d /usr/share/cargo/registry/rand-* /usr/share/cargo/registry/regex-1* /usr/share/cargo/registry/md5-*; \
	     } >/dev/null 2>&1 \
	   && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y -qq $(SYSTEM_PACKAGES) || { apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES); }; } \
	    >/dev/null 2>&1 || echo "note: could not install $(SYSTEM_PACKAGES); see the Makefile"; \
	fi

# pytest exits 5 when it collects nothing; that is not a pass, so say so loudly but do not hide real failures.
test: $(STAMP) system-packages
	@$(BIN)/python -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

demo: $(STAMP) system-packages
	$(BIN)/python scripts/demo.py

bench: $(STAMP) system-packages
	$(BIN)/python scripts/bench_preprocess.py
	$(BIN)/python scripts/bench_merge.py
	$(BIN)/python scripts/bench_packed_index.py
	$(BIN)/python scripts/bench_convert.py
	$(BIN)/python scripts/bench_check_shards.py
	$(BIN)/python scripts/bench_train.py
	$(BIN)/python scripts/bench_fsdp_memory.py
	$(BIN)/python scripts/bench_eval.py

clean:
	rm -rf $(VENV) out
