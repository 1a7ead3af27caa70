/* simde_qgemm_avx512.c - the AVX-512 word-GEMM kernels on SIMDe's portable AVX-512, for
 * test_nn_precision (their functions end in _simde). */
#define ISEG_QGEMM_SIMDE 1
#include "../src/nn/qgemm_avx512.c"
