// The Elman RNN, h_t = act(W x_t + b + R h_{t-1}).
#include "common.h"

namespace ablate {

template <typename T>
void elman_forward(Act act, const ElmanArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, rows = b1 - b0;
  for (int64_t t = 0; t < a.steps; ++t) {
    const int64_t here = t * a.batch + b0, next = here + a.batch;
    T* pre = a.h + next * n;
    matmul(rows, a.x + here * a.m, a.m, a.w_ih, false, pre, n);
    matmul(rows, a.h + here * n, n, a.w_hh, true, pre, n);
    for (int64_t row = 0; row < rows; ++row) {
      T* hn = a.h + (next + row) * n;
      if (!live(a.lengths, b0 + row, t)) {  // padding: hold the state
        copy_row(hn, a.h + (here + row) * n, n);
        continue;
      }
      add_row(hn, a.bias, n);
      activate(act, hn, n);
    }
  }
}

template <typename T>
void elman_backward(Act act, const ElmanArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, rows = b1 - b0;
  std::vector<T> dh(rows * n, T(0)), dh_next(rows * n);
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t here = t * a.batch + b0;
    for (int64_t row = 0; row < rows; ++row) {
      T* dhr = dh.data() + row * n;
      T* g = a.grad_pre + (here + row) * n;
      add_row(dhr, a.grad_h + (here + row) * n, n);
      if (!live(a.lengths, b0 + row, t)) {  // padding held the state: gradients pass through
        std::fill(g, g + n, T(0));
        continue;
      }
      copy_row(g, dhr, n);
      times_derivative(act, g, a.h + (here + a.batch + row) * n, n);
    }
    matmul(rows, a.grad_pre + here * n, n, a.w_hh, false, dh_next.data(), n);
    for (int64_t row = 0; row < rows; ++row)
      if (!live(a.lengths, b0 + row, t)) copy_row(dh_next.data() + row * n, dh.data() + row * n, n);
    std::swap(dh, dh_next);
  }
  copy_row(a.grad_h0 + b0 * n, dh.data(), rows * n);
}

template void elman_forward(Act, const ElmanArrays<float>&, int64_t, int64_t);
template void elman_forward(Act, const ElmanArrays<double>&, int64_t, int64_t);
template void elman_backward(Act, const ElmanArrays<float>&, int64_t, int64_t);
template void elman_backward(Act, const ElmanArrays<double>&, int64_t, int64_t);

}  // namespace ablate
