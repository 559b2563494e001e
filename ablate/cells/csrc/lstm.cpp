// The LSTM family: any subset of gates, a coupled forget gate (f = 1 - i), peepholes on the
// previous or the new cell, any activations, and full gate recurrence (FGR), where every gate
// also sees the previous activations a_{t-1} of all gates through one square matrix.
#include "common.h"

namespace ablate {

template <typename T>
void lstm_forward(const LSTMConfig& cf, const LSTMArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, width = a.width, fw = a.fed_width, rows = b1 - b0;
  const int64_t blocks = width / n;
  std::vector<T> ones(n, T(1)), coupled_f(n), fed_terms(rows * fw);
  // The first of this slice's rows of step t in c and fed (two steps' worth in inference).
  const auto kept = [&](int64_t t) { return ((a.keep ? t : t & 1) * a.batch + b0); };
  for (int64_t t = 0; t < a.steps; ++t) {
    const int64_t here = t * a.batch + b0, next = here + a.batch;
    const int64_t prev_at = kept(t), next_at = kept(t + 1);
    T* pre = a.act + ((a.keep ? t : 0) * a.batch + b0) * width;
    matmul(rows, a.x + here * a.m, a.m, a.w_ih, false, pre, width);
    matmul(rows, a.h + here * n, n, a.w_hh, true, pre, width);
    if (fw) matmul(rows, a.fed + prev_at * fw, fw, a.w_gg, false, fed_terms.data(), fw);
    for (int64_t row = 0; row < rows; ++row) {
      const T* cp = a.c + (prev_at + row) * n;
      T* cn = a.c + (next_at + row) * n;
      T* hn = a.h + (next + row) * n;
      if (!live(a.lengths, b0 + row, t)) {  // padding: hold the state
        copy_row(hn, a.h + (here + row) * n, n);
        copy_row(cn, cp, n);
        if (fw) copy_row(a.fed + (next_at + row) * fw, a.fed + (prev_at + row) * fw, fw);
        continue;
      }
      T* p = pre + row * width;
      add_row(p, a.bias, width);
      const T* fed_row = fed_terms.data() + row * fw;
      for (int64_t blk = 0; fw && blk < blocks; ++blk)
        if (blk != cf.blk) add_row(p + blk * n, fed_row + cf.fed_index(blk) * n, n);
      T* z = p + cf.blk * n;
      activate(cf.g, z, n);
      const T* i = ones.data();
      if (cf.in >= 0) {
        T* q = p + cf.in * n;
        if (cf.peep_in == Peep::Prev)
          for (int64_t j = 0; j < n; ++j) q[j] += a.peep_in[j] * cp[j];
        activate(cf.gate, q, n);
        i = q;
      }
      const T* f = ones.data();
      if (cf.coupled) {
        for (int64_t j = 0; j < n; ++j) coupled_f[j] = T(1) - i[j];
        f = coupled_f.data();
      } else if (cf.fg >= 0) {
        T* q = p + cf.fg * n;
        if (cf.peep_fg == Peep::Prev)
          for (int64_t j = 0; j < n; ++j) q[j] += a.peep_fg[j] * cp[j];
        activate(cf.gate, q, n);
        f = q;
      }
      for (int64_t j = 0; j < n; ++j) cn[j] = z[j] * i[j] + cp[j] * f[j];
      copy_row(hn, cn, n);
      activate(cf.k, hn, n);
      if (cf.out >= 0) {
        T* o = p + cf.out * n;
        const T* seen = cf.peep_out == Peep::New ? cn : cp;
        if (cf.peep_out != Peep::None)
          for (int64_t j = 0; j < n; ++j) o[j] += a.peep_out[j] * seen[j];
        activate(cf.out_gate, o, n);
        for (int64_t j = 0; j < n; ++j) hn[j] *= o[j];
      }
      T* fed_next = a.fed + (next_at + row) * fw;
      for (int64_t blk = 0; fw && blk < blocks; ++blk)
        if (blk != cf.blk) copy_row(fed_next + cf.fed_index(blk) * n, p + blk * n, n);
    }
  }
}

// Per row and step, from dh_t (carried plus this step's output gradient) and dc_t (carried):
//   do = dh * k(c_t) [+ da_o];  dc += dh * o * k'(c_t) [+ do' * p_o if o sees c_t]
//   dz = dc * i;  di = dc * z [- dc * c_{t-1} if f = 1 - i] [+ da_i];  df = dc * c_{t-1} [+ da_f]
//   dc_{t-1} = dc * f + the peepholes on c_{t-1};  dh_{t-1} = dpre R [;  da_{t-1} = dpre_gates G]
// where ' marks a gradient times its activation's derivative (= the pre-activation's).
template <typename T>
void lstm_backward(const LSTMConfig& cf, const LSTMArrays<T>& a, int64_t chunk, int64_t b0,
                   int64_t b1) {
  const int64_t n = a.n, width = a.width, fw = a.fed_width, rows = b1 - b0;
  const int64_t blocks = width / n;
  // da: the gradient of the fed-back activations a_t, from the last step's (the state's) on.
  std::vector<T> dh(rows * n, T(0)), dh_next(rows * n), da(rows * fw), da_next(rows * fw);
  if (fw) copy_row(da.data(), a.grad_a + b0 * fw, rows * fw);
  std::vector<T> ones(n, T(1)), coupled_f(n), squashed(n), through(n);
  T* dp = a.grad_peep + chunk * 3 * n;
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t here = t * a.batch + b0;
    T* dpre = a.grad_pre + here * width;
    for (int64_t row = 0; row < rows; ++row) {
      T* dhr = dh.data() + row * n;
      T* dc = a.grad_c + (b0 + row) * n;
      T* g = dpre + row * width;
      add_row(dhr, a.grad_h + (here + row) * n, n);
      if (!live(a.lengths, b0 + row, t)) {  // padding held the state: gradients pass through
        std::fill(g, g + width, T(0));
        if (fw) std::fill(a.grad_fed + (here + row) * fw, a.grad_fed + (here + row + 1) * fw, T(0));
        continue;
      }
      const T* p = a.act + (here + row) * width;
      const T* cp = a.c + (here + row) * n;
      const T* cn = a.c + (here + a.batch + row) * n;
      const T* dar = da.data() + row * fw;
      const T* z = p + cf.blk * n;
      const T* i = cf.in >= 0 ? p + cf.in * n : ones.data();
      const T* f = ones.data();
      if (cf.coupled) {
        for (int64_t j = 0; j < n; ++j) coupled_f[j] = T(1) - i[j];
        f = coupled_f.data();
      } else if (cf.fg >= 0) {
        f = p + cf.fg * n;
      }
      const T* o = cf.out >= 0 ? p + cf.out * n : ones.data();
      copy_row(squashed.data(), cn, n);
      activate(cf.k, squashed.data(), n);
      for (int64_t j = 0; j < n; ++j) through[j] = dhr[j] * o[j];
      times_derivative(cf.k, through.data(), squashed.data(), n);
      add_row(dc, through.data(), n);
      T* go = cf.out >= 0 ? g + cf.out * n : nullptr;
      if (cf.out >= 0) {
        for (int64_t j = 0; j < n; ++j) go[j] = dhr[j] * squashed[j];
        if (fw) add_row(go, dar + cf.fed_index(cf.out) * n, n);
        times_derivative(cf.out_gate, go, o, n);
        if (cf.peep_out == Peep::New)
          for (int64_t j = 0; j < n; ++j) dc[j] += go[j] * a.peep_out[j];
      }
      T* gz = g + cf.blk * n;
      for (int64_t j = 0; j < n; ++j) gz[j] = dc[j] * i[j];
      times_derivative(cf.g, gz, z, n);
      T* gi = cf.in >= 0 ? g + cf.in * n : nullptr;
      if (cf.in >= 0) {
        if (cf.coupled)
          for (int64_t j = 0; j < n; ++j) gi[j] = dc[j] * (z[j] - cp[j]);
        else
          for (int64_t j = 0; j < n; ++j) gi[j] = dc[j] * z[j];
        if (fw) add_row(gi, dar + cf.fed_index(cf.in) * n, n);
        times_derivative(cf.gate, gi, i, n);
      }
      T* gf = cf.fg >= 0 ? g + cf.fg * n : nullptr;
      if (cf.fg >= 0) {
        for (int64_t j = 0; j < n; ++j) gf[j] = dc[j] * cp[j];
        if (fw) add_row(gf, dar + cf.fed_index(cf.fg) * n, n);
        times_derivative(cf.gate, gf, f, n);
      }
      for (int64_t j = 0; j < n; ++j) dc[j] *= f[j];
      if (cf.peep_in == Peep::Prev)
        for (int64_t j = 0; j < n; ++j) {
          dc[j] += gi[j] * a.peep_in[j];
          dp[j] += gi[j] * cp[j];
        }
      if (cf.peep_fg == Peep::Prev)
        for (int64_t j = 0; j < n; ++j) {
          dc[j] += gf[j] * a.peep_fg[j];
          dp[n + j] += gf[j] * cp[j];
        }
      if (cf.peep_out == Peep::Prev)
        for (int64_t j = 0; j < n; ++j) {
          dc[j] += go[j] * a.peep_out[j];
          dp[2 * n + j] += go[j] * cp[j];
        }
      if (cf.peep_out == Peep::New)
        for (int64_t j = 0; j < n; ++j) dp[2 * n + j] += go[j] * cn[j];
      T* dfed = a.grad_fed + (here + row) * fw;
      for (int64_t blk = 0; fw && blk < blocks; ++blk)
        if (blk != cf.blk) copy_row(dfed + cf.fed_index(blk) * n, g + blk * n, n);
    }
    matmul(rows, dpre, width, a.w_hh, false, dh_next.data(), n);
    if (fw) matmul(rows, a.grad_fed + here * fw, fw, a.w_gg, false, da_next.data(), fw);
    for (int64_t row = 0; row < rows; ++row)
      if (!live(a.lengths, b0 + row, t)) {  // the held state passes its gradients on
        copy_row(dh_next.data() + row * n, dh.data() + row * n, n);
        if (fw) copy_row(da_next.data() + row * fw, da.data() + row * fw, fw);
      }
    std::swap(dh, dh_next);
    std::swap(da, da_next);
  }
  copy_row(a.grad_h0 + b0 * n, dh.data(), rows * n);
  if (fw) copy_row(a.grad_a + b0 * fw, da.data(), rows * fw);
}

template void lstm_forward(const LSTMConfig&, const LSTMArrays<float>&, int64_t, int64_t);
template void lstm_forward(const LSTMConfig&, const LSTMArrays<double>&, int64_t, int64_t);
template void lstm_backward(const LSTMConfig&, const LSTMArrays<float>&, int64_t, int64_t,
                            int64_t);
template void lstm_backward(const LSTMConfig&, const LSTMArrays<double>&, int64_t, int64_t,
                            int64_t);

}  // namespace ablate
