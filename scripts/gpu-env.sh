# Sourced from an unpacked scripts/gpu-bundle.sh archive (as its env.sh):
# makes its ryz, mpirun and libraries the ones found, relocates Open MPI to
# it, and puts the target's own CUDA libraries (cuBLAS, cudart, NCCL: the
# toolkit's, or the nvidia-* Python wheels') on the library path.
# usage: . /tmp/ryz-gpu/env.sh        then ryz, mpirun, test_cuda resolve here
_rg_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export RYZ_GPU_BUNDLE="$_rg_dir"
export PATH="$_rg_dir/bin:$_rg_dir/tests:$PATH"
export OPAL_PREFIX="$_rg_dir/usr"
# orted is in bin/, not under the prefix: a process that starts MPI by
# itself (a singleton: test_cuda, a one-rank nccl suite) execs it from here.
export OPAL_BINDIR="$_rg_dir/bin"
export PMIX_PREFIX="$_rg_dir/usr/lib/x86_64-linux-gnu/pmix2"
# Shared memory and TCP only: the target has no verbs, UCX or libfabric.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_mtl='^ofi'
export OMPI_MCA_osc='^ucx' OMPI_MCA_mca_base_component_show_load_errors=0
export OMPI_MCA_btl_base_warn_component_unused=0
_rg_libs="$_rg_dir/lib:$_rg_dir/usr/lib/x86_64-linux-gnu/openmpi/lib:$_rg_dir/usr/lib/x86_64-linux-gnu/pmix2/lib"
# First directory holding each CUDA library the build links (the names
# ldd lists for ryz): the toolkit's, then any Python wheel's
# (nvidia/<pkg>/lib), then anywhere.
_rg_need=$(ldd "$_rg_dir/bin/ryz" 2>/dev/null | awk '$1 ~ /^lib(cudart|cublas|cublasLt|nccl)\.so/ {print $1}' | sort -u)
for _rg_so in ${_rg_need:-libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2}; do
  _rg_hit=$(ls /usr/local/cuda/lib64/$_rg_so /usr/local/cuda/targets/x86_64-linux/lib/$_rg_so \
              /usr/lib/x86_64-linux-gnu/$_rg_so 2>/dev/null | head -n1)
  [ -n "$_rg_hit" ] || _rg_hit=$(ls /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib/$_rg_so \
              /usr/local/lib/python3*/dist-packages/nvidia/*/lib/$_rg_so 2>/dev/null | head -n1)
  [ -n "$_rg_hit" ] || _rg_hit=$(find / -xdev -path /proc -prune -o -name "$_rg_so" -print 2>/dev/null | head -n1)
  if [ -n "$_rg_hit" ]; then
    case ":$_rg_libs:" in *":$(dirname "$_rg_hit"):"*) ;; *) _rg_libs="$_rg_libs:$(dirname "$_rg_hit")" ;; esac
  else
    echo "gpu-env: warning: $_rg_so not found on this machine" >&2
  fi
done
export LD_LIBRARY_PATH="$_rg_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _rg_dir _rg_libs _rg_so _rg_hit _rg_need
