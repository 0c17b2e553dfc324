#!/usr/bin/env bash
# llama.cpp's own `llama-bench` and `llama-server`, built the way llama.cpp
# builds them (CMake, Release), for the side-by-side rows in BENCHMARKS.md and
# the third-party-server test. The sources are llama.cpp as vendored in the
# llama-cpp-python sdist (the only package registry route to llama.cpp's tools:
# the llama-cpp-sys-2 crate ships the library without them).
#
#   bench/llama-bench.sh [avx2|native]     # prints the directory holding the binaries
#
# avx2    the portable x86-64 build with AVX2/FMA/F16C (what lmhost's build uses)
# native  -march=native without AMX: this VM's CPU reports AMX, but the guest
#         may not use it (SIGILL in the AMX kernels)
# crate   avx2, but the llama.cpp sources lmhost links (llama-cpp-sys-2's, a
#         different llama.cpp version), with the sdist's llama-bench.cpp dropped
#         in (the crate ships its tools without sources); llama-bench only
#
# Builds once per variant into ~/.cache/lmhost/llama.cpp/ (about 15 minutes
# on 2 cores); later calls only print the directory.
set -euo pipefail

variant=${1:-avx2}
sdist=llama-cpp-python==0.3.36
cache=${LMHOST_CACHE:-$HOME/.cache/lmhost}/llama.cpp
src=$cache/src/llama_cpp_python-0.3.36/vendor/llama.cpp
build=$cache/build-$variant

case $variant in
avx2) flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
native) flags=(-DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
	"-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16") ;;
crate) flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
*)
	echo "usage: $0 [avx2|native]" >&2
	exit 2
	;;
esac

targets=(llama-bench llama-server)
[ "$variant" = crate ] && targets=(llama-bench)
if [ -x "$build/bin/llama-bench" ] && { [ "$variant" = crate ] || [ -x "$build/bin/llama-server" ]; }; then
	echo "$build/bin"
	exit 0
fi

if [ ! -f "$src/CMakeLists.txt" ]; then
	mkdir -p "$cache/src"
	python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$cache/src" "$sdist" >&2
	tar -xzf "$cache"/src/llama_cpp_python-0.3.36.tar.gz -C "$cache/src"
fi

if [ "$variant" = crate ]; then
	crate_src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/llama-cpp-sys-2-0.1.160/llama.cpp | head -1)
	src=$cache/src/crate-llama.cpp
	if [ ! -f "$src/tools/llama-bench/llama-bench.cpp" ]; then
		rm -rf "$src" && cp -r "$crate_src" "$src"
		cp "$cache"/src/llama_cpp_python-0.3.36/vendor/llama.cpp/tools/llama-bench/{llama-bench.cpp,main.cpp,CMakeLists.txt} "$src/tools/llama-bench/"
		echo 'add_subdirectory(llama-bench)' >"$src/tools/CMakeLists.txt"
	fi
fi

{
	cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
		-DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
		-DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF "${flags[@]}"
	cmake --build "$build" --target "${targets[@]}" -j"$(nproc)"
} >&2
echo "$build/bin"
