// Small matrix products through the BLAS that torch links (MKL on x86 wheels). The symbols
// are weak: where torch exports none, has_blas() says so and the Python side falls back.
#include "common.h"

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
}

namespace ablate {

bool has_blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }

// BLAS is column-major: it sees each row-major matrix transposed and computes c^T = op(w) a^T.
template <typename T, typename Gemm>
void gemm_rows(Gemm gemm, int64_t rows, int64_t cols, int64_t inner, const T* a, int64_t lda,
               const T* w, bool transpose_w, T beta, T* c, int64_t ldc) {
  if (rows == 0 || cols == 0) return;
  const int m = int(cols), n = int(rows), k = int(inner), la = int(lda),
            lw = int(transpose_w ? inner : cols), lc = int(ldc);
  const T one = 1;
  gemm(transpose_w ? "T" : "N", "N", &m, &n, &k, &one, w, &lw, a, &la, &beta, c, &lc);
}

void matmul(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t lda,
            const float* w, bool transpose_w, float beta, float* c, int64_t ldc) {
  gemm_rows(sgemm_, rows, cols, inner, a, lda, w, transpose_w, beta, c, ldc);
}

void matmul(int64_t rows, int64_t cols, int64_t inner, const double* a, int64_t lda,
            const double* w, bool transpose_w, double beta, double* c, int64_t ldc) {
  gemm_rows(dgemm_, rows, cols, inner, a, lda, w, transpose_w, beta, c, ldc);
}

}  // namespace ablate
