// Small matrix products. float32 goes through torch's oneDNN batch-reduce GEMM micro-kernel
// (at::native::cpublas::brgemm, the one TorchInductor's CPU templates call), which runs on the
// calling thread with the CPU's widest vectors: 1.2-2x faster than MKL's sgemm at a step's
// sizes on AMD CPUs, where MKL does not use AVX-512. Where oneDNN's micro-kernels are not
// built in (or torch.backends.mkldnn is off), brgemm itself falls back to BLAS. float64 calls
// BLAS directly. The symbols are weak: where torch exports none, has_blas() says so and the
// Python side falls back.
#include "common.h"

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
}

// Declared here rather than through ATen/native/CPUBlas.h, whose oneDNN headers would double
// the one-time build.
namespace at::native::cpublas {
void brgemm(int64_t m, int64_t n, int64_t k, int64_t ld_a, int64_t ld_b, int64_t ld_c,
            bool add_c, const float* a, const float* b, float* c, bool is_vnni)
    __attribute__((weak));
}

namespace ablate {

bool has_blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }

// BLAS is column-major: it sees each row-major matrix transposed and computes c^T = b^T a^T.
template <typename T, typename Gemm>
void gemm_rows(Gemm gemm, int64_t rows, int64_t cols, int64_t inner, const T* a, int64_t lda,
               const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  const int m = int(cols), n = int(rows), k = int(inner), la = int(lda), lb = int(ldb),
            lc = int(ldc);
  const T one = 1, beta = accumulate ? 1 : 0;
  gemm("N", "N", &m, &n, &k, &one, b, &lb, a, &la, &beta, c, &lc);
}

void gemm(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t lda,
          const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc) {
  if (rows == 0 || cols == 0) return;
  if (at::native::cpublas::brgemm != nullptr)
    at::native::cpublas::brgemm(rows, cols, inner, lda, ldb, ldc, accumulate, a, b, c, false);
  else
    gemm_rows(sgemm_, rows, cols, inner, a, lda, b, ldb, accumulate, c, ldc);
}

void gemm(int64_t rows, int64_t cols, int64_t inner, const double* a, int64_t lda,
          const double* b, int64_t ldb, bool accumulate, double* c, int64_t ldc) {
  if (rows == 0 || cols == 0) return;
  gemm_rows(dgemm_, rows, cols, inner, a, lda, b, ldb, accumulate, c, ldc);
}

}  // namespace ablate
