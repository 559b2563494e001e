// xLSTM's sLSTM: exponential input gate, sigmoid or exponential forget gate, the normaliser n
// and the stabiliser m (Beck et al. 2024):
//   m_t = max(log f_t + m_{t-1}, log i_t);  i' = exp(log i_t - m_t);  f' = exp(log f_t + m_{t-1} - m_t)
//   c_t = f' c_{t-1} + i' z_t;  n_t = f' n_{t-1} + i';  h_t = o_t c_t / n_t
// with log i_t = i~ (the pre-activation) and log f_t = log sigmoid(f~) or f~. Backward is the
// derivative of exactly these operations, m's max included (ties split evenly, as
// torch.maximum's), so that it equals autograd through the reference loop.
#include "common.h"

namespace ablate {

namespace {

// lf = log f: f~ itself (exponential forget gate), or log sigmoid(f~) as torch computes it,
// min(f~, 0) - log1p(exp(-|f~|)).
template <typename T>
void log_forget(const SLSTMConfig& cf, const T* f, T* lf, int64_t n) {
  if (cf.exp_forget) {
    copy_row(lf, f, n);
    return;
  }
  for (int64_t j = 0; j < n; ++j) lf[j] = std::min(f[j], T(0)) - std::log1p(std::exp(-std::abs(f[j])));
}

// The stabilised gates of one row: i' = exp(i~ - m), f' = exp(lf + m_prev - m). Simple loops,
// so that each vectorises.
template <typename T>
void gates(const T* i, const T* lf, const T* m_prev, const T* m, T* in, T* fg, int64_t n) {
  for (int64_t j = 0; j < n; ++j) in[j] = std::exp(i[j] - m[j]);
  for (int64_t j = 0; j < n; ++j) fg[j] = std::exp(lf[j] + m_prev[j] - m[j]);
}

}  // namespace

template <typename T>
void slstm_forward(const SLSTMConfig& cf, const SLSTMArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, w = 4 * n, rows = b1 - b0;
  std::vector<T> lf(n), in(n), fg(n);
  for (int64_t t = 0; t < a.steps; ++t) {
    const int64_t here = t * a.batch + b0, next = here + a.batch;
    T* pre = a.act + here * w;
    matmul(rows, a.x + here * a.m, a.m, a.w_ih, false, pre, w);
    matmul(rows, a.h + here * n, n, a.w_hh, true, pre, w);
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t from = (here + row) * n, to = (next + row) * n;
      if (!live(a.lengths, b0 + row, t)) {  // padding: hold every state
        for (T* s : {a.h, a.c, a.nrm, a.m_state}) copy_row(s + to, s + from, n);
        continue;
      }
      T* p = pre + row * w;  // i~, f~ kept raw; z and o activated in place
      add_row(p, a.bias, w);
      activate(cf.block, p + 2 * n, n);
      activate(cf.out_gate, p + 3 * n, n);
      log_forget(cf, p + n, lf.data(), n);
      const T *m_prev = a.m_state + from, *c_prev = a.c + from, *n_prev = a.nrm + from;
      T *m = a.m_state + to, *c = a.c + to, *nrm = a.nrm + to, *h = a.h + to;
      for (int64_t j = 0; j < n; ++j) m[j] = std::max(lf[j] + m_prev[j], p[j]);
      gates(p, lf.data(), m_prev, m, in.data(), fg.data(), n);
      const T *z = p + 2 * n, *o = p + 3 * n;
      for (int64_t j = 0; j < n; ++j) {
        c[j] = fg[j] * c_prev[j] + in[j] * z[j];
        nrm[j] = fg[j] * n_prev[j] + in[j];
        h[j] = o[j] * c[j] / nrm[j];
      }
    }
  }
}

// Per row and step, from the gradients of h_t (carried plus the output's), c_t, n_t, m_t:
//   do = dh c / n;  dc += dh o / n;  dn -= dh o c / n^2;  dz = dc i'
//   d log f' = (dc c_{t-1} + dn n_{t-1}) f';  d log i' = (dc z + dn) i'
//   dm_t -= d log f' + d log i', then to the larger of lf + m_{t-1} and i~ (half each on a tie)
//   d lf = dm_{t-1} = d log f' + its share;  di~ = d log i' + its share;  df~ = d lf sigmoid(-f~)
//   dc_{t-1} = dc f';  dn_{t-1} = dn f';  dh_{t-1} = dpre R
template <typename T>
void slstm_backward(const SLSTMConfig& cf, const SLSTMArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, w = 4 * n, rows = b1 - b0;
  std::vector<T> dh(rows * n, T(0)), dh_next(rows * n);
  std::vector<T> dc(a.grad_c + b0 * n, a.grad_c + b1 * n);
  std::vector<T> dn(a.grad_n + b0 * n, a.grad_n + b1 * n);
  std::vector<T> dm(a.grad_m + b0 * n, a.grad_m + b1 * n);
  std::vector<T> lf(n), in(n), fg(n);
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t here = t * a.batch + b0, next = here + a.batch;
    for (int64_t row = 0; row < rows; ++row) {
      T* dhr = dh.data() + row * n;
      T* g = a.grad_pre + (here + row) * w;
      add_row(dhr, a.grad_h + (here + row) * n, n);
      if (!live(a.lengths, b0 + row, t)) {  // the states were held: gradients pass through
        std::fill(g, g + w, T(0));
        continue;
      }
      const T* p = a.act + (here + row) * w;
      const int64_t from = (here + row) * n, to = (next + row) * n;
      const T *m_prev = a.m_state + from, *c_prev = a.c + from, *n_prev = a.nrm + from;
      const T *m = a.m_state + to, *c = a.c + to, *nrm = a.nrm + to;
      const T *z = p + 2 * n, *o = p + 3 * n;
      log_forget(cf, p + n, lf.data(), n);
      gates(p, lf.data(), m_prev, m, in.data(), fg.data(), n);
      T *dcr = dc.data() + row * n, *dnr = dn.data() + row * n, *dmr = dm.data() + row * n;
      for (int64_t j = 0; j < n; ++j) {
        g[3 * n + j] = dhr[j] * c[j] / nrm[j];
        const T d_c = dcr[j] + dhr[j] * o[j] / nrm[j];
        const T d_n = dnr[j] - dhr[j] * o[j] * c[j] / (nrm[j] * nrm[j]);
        const T d_fg = (d_c * c_prev[j] + d_n * n_prev[j]) * fg[j];
        const T d_in = (d_c * z[j] + d_n) * in[j];
        g[2 * n + j] = d_c * in[j];
        dcr[j] = d_c * fg[j];
        dnr[j] = d_n * fg[j];
        const T d_m = dmr[j] - d_fg - d_in, forget_side = lf[j] + m_prev[j];
        const T share = forget_side > p[j] ? T(1) : forget_side < p[j] ? T(0) : T(0.5);
        const T d_lf = d_fg + d_m * share;
        g[j] = d_in + d_m * (T(1) - share);
        g[n + j] = d_lf;
        dmr[j] = d_lf;
      }
      if (!cf.exp_forget)  // d log sigmoid(f~) / df~ = sigmoid(-f~), from exp(-|f~|) <= 1
        for (int64_t j = 0; j < n; ++j) {
          const T e = std::exp(-std::abs(p[n + j]));
          g[n + j] *= (p[n + j] > T(0) ? e : T(1)) / (T(1) + e);
        }
      times_derivative(cf.block, g + 2 * n, z, n);
      times_derivative(cf.out_gate, g + 3 * n, o, n);
    }
    matmul(rows, a.grad_pre + here * w, w, a.w_hh, false, dh_next.data(), n);
    for (int64_t row = 0; row < rows; ++row)
      if (!live(a.lengths, b0 + row, t)) copy_row(dh_next.data() + row * n, dh.data() + row * n, n);
    std::swap(dh, dh_next);
  }
  copy_row(a.grad_h0 + b0 * n, dh.data(), rows * n);
  copy_row(a.grad_c + b0 * n, dc.data(), rows * n);
  copy_row(a.grad_n + b0 * n, dn.data(), rows * n);
  copy_row(a.grad_m + b0 * n, dm.data(), rows * n);
}

template void slstm_forward(const SLSTMConfig&, const SLSTMArrays<float>&, int64_t, int64_t);
template void slstm_forward(const SLSTMConfig&, const SLSTMArrays<double>&, int64_t, int64_t);
template void slstm_backward(const SLSTMConfig&, const SLSTMArrays<float>&, int64_t, int64_t);
template void slstm_backward(const SLSTMConfig&, const SLSTMArrays<double>&, int64_t, int64_t);

}  // namespace ablate
