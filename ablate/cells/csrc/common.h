// Helpers of the kernel files: activations, small matrix products, padding, row copies.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace ablate {

// tanh to float32's precision (relative error < 3e-7) at 0.7x the cost of glibc's vector
// tanhf: Eigen's rational approximation, exact to rounding beyond |x| = 7.9.
inline float tanh_fast(float x) {
  constexpr float bound = 7.90531110763549805f;
  x = std::min(std::max(x, -bound), bound);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

// The library's tanh in float64; the fast one in float32, where the sigmoid becomes
// 1/2 + tanh(x/2)/2 (absolute error < 2e-7), sparing an exp and a division.
inline double tanh_of(double x) { return std::tanh(x); }
inline float tanh_of(float x) { return tanh_fast(x); }
inline double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float sigmoid_of(float x) { return 0.5f + 0.5f * tanh_fast(0.5f * x); }

// x = act(x), elementwise. The switch sits outside the loops so each loop vectorises
// (-ffast-math lets GCC call glibc's vector exp and tanh).
template <typename T>
void activate(Act act, T* x, int64_t n) {
  switch (act) {
    case Act::Tanh:
      for (int64_t j = 0; j < n; ++j) x[j] = tanh_of(x[j]);
      break;
    case Act::Sigmoid:
      for (int64_t j = 0; j < n; ++j) x[j] = sigmoid_of(x[j]);
      break;
    case Act::Identity:
      break;
    case Act::Relu:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] > T(0) ? x[j] : T(0);
      break;
    case Act::Hardtanh:
      for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max(x[j], T(-1)), T(1));
      break;
    case Act::Softsign:
      for (int64_t j = 0; j < n; ++j) x[j] = x[j] / (T(1) + std::abs(x[j]));
      break;
    case Act::Hardsigmoid:
      for (int64_t j = 0; j < n; ++j) x[j] = std::min(std::max(x[j] + T(3), T(0)), T(6)) / T(6);
      break;
  }
}

// g *= act'(x), written with the output y = act(x), so backward needs only the activations
// forward kept. Where a function is clipped its derivative is 0, as in torch.
template <typename T>
void times_derivative(Act act, T* g, const T* y, int64_t n) {
  switch (act) {
    case Act::Tanh:
      for (int64_t j = 0; j < n; ++j) g[j] *= T(1) - y[j] * y[j];
      break;
    case Act::Sigmoid:
      for (int64_t j = 0; j < n; ++j) g[j] *= y[j] * (T(1) - y[j]);
      break;
    case Act::Identity:
      break;
    case Act::Relu:
      for (int64_t j = 0; j < n; ++j) g[j] = y[j] > T(0) ? g[j] : T(0);
      break;
    case Act::Hardtanh:
      for (int64_t j = 0; j < n; ++j) g[j] = (y[j] > T(-1) && y[j] < T(1)) ? g[j] : T(0);
      break;
    case Act::Softsign:
      for (int64_t j = 0; j < n; ++j) g[j] *= (T(1) - std::abs(y[j])) * (T(1) - std::abs(y[j]));
      break;
    case Act::Hardsigmoid:
      for (int64_t j = 0; j < n; ++j) g[j] = (y[j] > T(0) && y[j] < T(1)) ? g[j] / T(6) : T(0);
      break;
  }
}

// Row-major c (rows x cols, row stride ldc) = a (rows x inner, row stride lda) @ b, plus c
// itself if accumulate, with b row-major (inner x cols, row stride ldb).
void gemm(int64_t rows, int64_t cols, int64_t inner, const float* a, int64_t lda,
          const float* b, int64_t ldb, bool accumulate, float* c, int64_t ldc);
void gemm(int64_t rows, int64_t cols, int64_t inner, const double* a, int64_t lda,
          const double* b, int64_t ldb, bool accumulate, double* c, int64_t ldc);

// c (rows x w.cols) = a @ w [+ c], one panel of w at a time.
template <typename T>
void matmul(int64_t rows, const T* a, int64_t lda, const Panels<T>& w, bool accumulate, T* c,
            int64_t ldc) {
  for (int64_t first = 0; first < w.cols; first += w.width)
    gemm(rows, std::min(w.width, w.cols - first), w.inner, a, lda, w.data + first * w.inner,
         w.width, accumulate, c + first, ldc);
}

inline bool live(const int64_t* lengths, int64_t b, int64_t t) {
  return lengths == nullptr || t < lengths[b];
}

template <typename T>
void copy_row(T* dst, const T* src, int64_t n) {
  std::memcpy(dst, src, sizeof(T) * n);
}

template <typename T>
void add_row(T* dst, const T* src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}

}  // namespace ablate
