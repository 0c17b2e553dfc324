#!/usr/bin/env bash
# lmhost with llama.cpp's CUDA backend as a loadable module, built on any x86-64
# Linux machine, with or without a GPU: the CUDA 13 toolkit comes from PyPI
# (nvcc, runtime, cuBLAS, CCCL headers), not from a system install.
#
#   scripts/build-cuda.sh            # prints the folder holding lmhost and its modules
#   scripts/build-cuda.sh --candle   # also lmhost-candle-cuda there: candle on CUDA too
#
# The result is one build for every machine: `libggml-cuda.so` sits beside the
# CPU variant modules; engines/llama/cpu.rs loads it when it can. Where the
# NVIDIA driver (libcuda.so.1) or CUDA runtime is absent the module does not
# load, `lmhost list devices` says why, and llama.cpp runs on the CPU.
# The module needs libcudart.so.13, libcublas.so.13 and libcublasLt.so.13 at
# run time: they are linked beside the binary (its RPATH, $ORIGIN, is the
# module's search path too); copy them with it (`cp -L`) to another machine.
#
# GPU code is compiled for sm_90 (H100/H200) unless CUDAARCHS says otherwise
# (CMake's variable: "90", "89;90", "native", ...).
#
# Environment: LMHOST_CACHE (default ~/.cache/lmhost): the toolkit goes to
# $LMHOST_CACHE/cuda, the build to $LMHOST_CACHE/target-cuda (its own target
# folder: the crates are the same but llama.cpp's are built with CUDA, and the
# CPU-only binary of `make` must not pick up a CUDA module).
#
# `--candle` also builds `--features cuda,candle-cuda` as `lmhost-candle-cuda`
# beside it. candle links the CUDA driver library into the binary (its bindings
# are fixed to link, not load, it), so that binary starts only where the NVIDIA
# driver is; `lmhost` stays the one that runs everywhere.
#
# Takes long: ggml's CUDA kernels are ~190 nvcc compilations (about an hour
# on 2 cores, for one architecture), on top of a full release build.
set -euo pipefail

cd "$(dirname "$0")/.."
cache=${LMHOST_CACHE:-$HOME/.cache/lmhost}
venv=$cache/cuda/venv
target=${LMHOST_CUDA_TARGET:-$cache/target-cuda}
# One CUDA release for every part: nvcc and its front ends (crt, nvvm) must
# match, and the runtime must not be newer than the compiler.
cuda=13.0
packages=(nvidia-cuda-nvcc nvidia-cuda-crt nvidia-nvvm nvidia-cuda-runtime nvidia-cublas nvidia-cuda-cccl)
candle=0
case ${1:-} in
--candle) candle=1 ;;
"") ;;
*)
	echo "usage: $0 [--candle]" >&2
	exit 2
	;;
esac

if [ ! -x "$venv/bin/python" ]; then
	python3 -m venv "$venv"
fi
root=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13
if [ ! -x "$root/bin/nvcc" ]; then
	"$venv/bin/pip" install --quiet "${packages[@]/%/==$cuda.*}" >&2
fi
if [ "$candle" = 1 ] && [ ! -e "$root/lib/libnvrtc.so.13" ]; then
	# candle compiles kernels at run time (NVRTC) and draws random numbers (cuRAND).
	"$venv/bin/pip" install --quiet "nvidia-cuda-nvrtc==$cuda.*" "nvidia-curand==10.4.0.*" >&2
fi

# The wheels put the libraries in lib/, where nvcc's own profile looks in
# lib64/, and ship only versioned names (libcudart.so.13), where CMake's
# FindCUDAToolkit looks for the development names.
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"
for lib in "$root"/lib/lib*.so.[0-9]*; do
	name=$(basename "$lib")
	ln -sf "$name" "$root/lib/${name%%.so.*}.so"
done

# The driver API (libcuda.so.1) comes with the NVIDIA driver, never with the
# toolkit. ggml's CUDA module links it for its virtual-memory pool, candle's
# bindings for everything; like the toolkit's own stubs folder, a library that
# only carries the name and the symbols lets them link here. It is never
# shipped: at run time the module loads the driver's real library, or does not
# load at all. Its symbols: the driver calls in ggml's CUDA sources and in
# candle's bindings (cudarc, the version the lock file pins).
stubs=$root/lib/stubs
if [ ! -f "$stubs/libcuda.so" ]; then
	mkdir -p "$stubs"
	cargo fetch --quiet >&2
	registry=${CARGO_HOME:-$HOME/.cargo}/registry/src
	cudarc=$(awk '/^name = "cudarc"/{getline; v=$3} END{gsub(/"/,"",v); print v}' Cargo.lock)
	{
		grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\(' "$(ls -d "$registry"/*/llama-cpp-sys-2-0.1.160 | head -1)"/llama.cpp/ggml/src/ggml-cuda/*.cu*
		grep -ohE '^\s+fn cu[A-Za-z0-9_]+\(' "$(ls -d "$registry"/*/cudarc-"$cudarc" | head -1)"/src/driver/sys/mod.rs
	} | sed -E 's/^\s*fn //' | grep -v '^cuBLAS' | tr -d '(' | sort -u |
		sed 's/.*/int &(void) { return 34; \/* CUDA_ERROR_STUB_LIBRARY *\/ }/' >"$stubs/cuda-stub.c"
	cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/cuda-stub.c"
fi

export PATH=$root/bin:$PATH
export CUDACXX=$root/bin/nvcc
export CUDAToolkit_ROOT=$root
export CUDA_PATH=$root
export CUDAARCHS=${CUDAARCHS:-90}
export CARGO_TARGET_DIR=$target
# candle compiles its kernels for one compute capability (it would ask the
# GPU): the first of CUDAARCHS.
export CUDA_COMPUTE_CAP=${CUDAARCHS%%[;-]*}
export CUDA_ROOT=$root

libs=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13)
if [ "$candle" = 1 ]; then
	cargo build --release --features cuda,candle-cuda -p lmhost --bin lmhost >&2
	cp "$target/release/lmhost" "$target/release/lmhost-candle-cuda"
	libs+=(libcurand.so.10 libnvrtc.so.13 libnvrtc-builtins.so.13.0)
fi
# Last, so that `lmhost` is the build that runs everywhere.
cargo build --release --features cuda -p lmhost --bin lmhost >&2
for lib in "${libs[@]}"; do
	ln -sf "$root/lib/$lib" "$target/release/$lib"
done
echo "$target/release"
