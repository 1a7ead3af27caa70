/* simde_avx512.c - the AVX-512 kernels (SGEMM, and the word GEMM's int8 and bf16) on SIMDe's
 * portable AVX-512, for test_nn_precision (their functions end in _simde). */
#define ISEG_GEMM_SIMDE  1
#define ISEG_QGEMM_SIMDE 1
#include "../src/nn/gemm_avx512.c"
/* each source defines its own helpers: reset the shared names */
#undef TGT
#undef KNAME
#undef HAVE_AVX512
#include "../src/nn/qgemm_avx512.c"
