// The GRU family: reset and update gates fed by R h, R tanh(h) or neither; a candidate with
// the reset gate before R (R (r * h)), after it (r * (R h + b_hn)) or without R h; the update
// gate on the old or the new side. Every input-only term arrives folded into xp.
#include "common.h"

namespace ablate {
namespace {

// The block-th N-slice of row, if the gate takes that term.
template <typename T>
void add_block(T* dst, const T* row, int64_t block, int64_t n) {
  if (block >= 0) add_row(dst, row + block * n, n);
}

template <typename T>
void set_block(T* row, int64_t block, const T* src, int64_t n) {
  if (block >= 0) copy_row(row + block * n, src, n);
}

}  // namespace

template <typename T>
void gru_forward(const GRUConfig& cf, const GRUArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, fw = a.first_width, tw = a.th_width, rows = b1 - b0;
  std::vector<T> hc(rows * fw), tc(rows * tw), cand(rows * n);
  for (int64_t t = 0; t < a.steps; ++t) {
    const int64_t here = t * a.batch + b0, next = here + a.batch;
    const int64_t kept = (a.keep ? t : 0) * a.batch + b0;  // the rows of act, aux and th
    const T* hp_rows = a.h + here * n;
    if (fw) matmul(rows, hp_rows, n, a.w_first, false, hc.data(), fw);
    if (tw) {
      T* th = a.th + kept * n;
      copy_row(th, hp_rows, rows * n);
      activate(Act::Tanh, th, rows * n);
      matmul(rows, th, n, a.w_th, false, tc.data(), tw);
    }
    // The gates, and what the reset gate multiplies.
    for (int64_t row = 0; row < rows; ++row) {
      const T* hp = hp_rows + row * n;
      T* ax = a.aux ? a.aux + (kept + row) * n : nullptr;
      if (!live(a.lengths, b0 + row, t)) {  // padding: hold the state; keep aux finite
        copy_row(a.h + (next + row) * n, hp, n);
        if (ax) std::fill(ax, ax + n, T(0));
        continue;
      }
      T* r = a.act + (kept + row) * 3 * n;
      T* z = r + n;
      const T *hcr = hc.data() + row * fw, *tcr = tc.data() + row * tw;
      copy_row(r, a.xp + (here + row) * 3 * n, 2 * n);
      add_block(r, hcr, cf.reset_first, n);
      add_block(r, tcr, cf.reset_th, n);
      add_block(z, hcr, cf.update_first, n);
      add_block(z, tcr, cf.update_th, n);
      activate(cf.gate, r, 2 * n);
      if (cf.candidate == Candidate::ResetAfter) {
        const T* rh = hcr + cf.candidate_first * n;
        for (int64_t j = 0; j < n; ++j) ax[j] = rh[j] + a.bias_hn[j];
      } else if (cf.candidate == Candidate::ResetBefore) {
        for (int64_t j = 0; j < n; ++j) ax[j] = r[j] * hp[j];
      }
    }
    if (cf.candidate == Candidate::ResetBefore)
      matmul(rows, a.aux + kept * n, n, a.w_candidate, false, cand.data(), n);
    // The candidate and the update.
    for (int64_t row = 0; row < rows; ++row) {
      if (!live(a.lengths, b0 + row, t)) continue;
      const T* hp = hp_rows + row * n;
      T* r = a.act + (kept + row) * 3 * n;
      const T* z = r + n;
      T* hn = r + 2 * n;
      copy_row(hn, a.xp + (here + row) * 3 * n + 2 * n, n);
      if (cf.candidate == Candidate::ResetAfter) {
        const T* ax = a.aux + (kept + row) * n;
        for (int64_t j = 0; j < n; ++j) hn[j] += r[j] * ax[j];
      } else if (cf.candidate == Candidate::ResetBefore) {
        add_row(hn, cand.data() + row * n, n);
      }
      activate(cf.block, hn, n);
      T* out = a.h + (next + row) * n;
      if (cf.update_new)
        for (int64_t j = 0; j < n; ++j) out[j] = z[j] * hn[j] + (T(1) - z[j]) * hp[j];
      else
        for (int64_t j = 0; j < n; ++j) out[j] = z[j] * hp[j] + (T(1) - z[j]) * hn[j];
    }
  }
}

// Per row and step, with dh_t carried plus this step's output gradient (old side; the new
// side swaps the roles of h_{t-1} and h~):
//   dz = dh (h_{t-1} - h~);  dh~ = dh (1 - z);  dh_{t-1} = dh z
//   after:  d(R_h h) = dh~' r;  dr = dh~' (R_h h + b_hn)
//   before: d(r h) = dh~' R_h;  dr = d(r h) h_{t-1};  dh_{t-1} += d(r h) r
//   dh_{t-1} += d(first) R_first + (d(th) R_th) (1 - tanh^2 h_{t-1})
template <typename T>
void gru_backward(const GRUConfig& cf, const GRUArrays<T>& a, int64_t b0, int64_t b1) {
  const int64_t n = a.n, fw = a.first_width, tw = a.th_width, rows = b1 - b0;
  std::vector<T> dh(rows * n, T(0)), dh_next(rows * n), drh(rows * n), dth(rows * n);
  for (int64_t t = a.steps - 1; t >= 0; --t) {
    const int64_t here = t * a.batch + b0;
    // Through the update and the candidate's activation (and R_h, after the reset gate).
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t idx = here + row;
      T* dhr = dh.data() + row * n;
      T* dprev = dh_next.data() + row * n;
      T* gr = a.grad_xp + idx * 3 * n;
      T *gz = gr + n, *gn = gr + 2 * n;
      add_row(dhr, a.grad_h + idx * n, n);
      if (!live(a.lengths, b0 + row, t)) {  // padding held the state: gradients pass through
        std::fill(gr, gr + 3 * n, T(0));
        if (fw) std::fill(a.grad_first + idx * fw, a.grad_first + (idx + 1) * fw, T(0));
        if (tw) std::fill(a.grad_th + idx * tw, a.grad_th + (idx + 1) * tw, T(0));
        copy_row(dprev, dhr, n);
        continue;
      }
      const T* hp = a.h + idx * n;
      const T* r = a.act + idx * 3 * n;
      const T *z = r + n, *hn = r + 2 * n;
      if (cf.update_new)
        for (int64_t j = 0; j < n; ++j) {
          gz[j] = dhr[j] * (hn[j] - hp[j]);
          gn[j] = dhr[j] * z[j];
          dprev[j] = dhr[j] * (T(1) - z[j]);
        }
      else
        for (int64_t j = 0; j < n; ++j) {
          gz[j] = dhr[j] * (hp[j] - hn[j]);
          gn[j] = dhr[j] * (T(1) - z[j]);
          dprev[j] = dhr[j] * z[j];
        }
      times_derivative(cf.gate, gz, z, n);
      times_derivative(cf.block, gn, hn, n);
      if (cf.candidate == Candidate::ResetAfter) {
        const T* ax = a.aux + idx * n;
        T* gc = a.grad_first + idx * fw + cf.candidate_first * n;
        for (int64_t j = 0; j < n; ++j) {
          gc[j] = gn[j] * r[j];
          gr[j] = gn[j] * ax[j];
        }
      } else if (cf.candidate == Candidate::InputOnly) {
        std::fill(gr, gr + n, T(0));
      }
    }
    if (cf.candidate == Candidate::ResetBefore)
      matmul(rows, a.grad_xp + here * 3 * n + 2 * n, 3 * n, a.w_candidate, false, drh.data(), n);
    // The reset gate before R_h, the gates' derivatives, routed to R_first and R_th.
    for (int64_t row = 0; row < rows; ++row) {
      const int64_t idx = here + row;
      if (!live(a.lengths, b0 + row, t)) continue;
      const T* r = a.act + idx * 3 * n;
      T* gr = a.grad_xp + idx * 3 * n;
      if (cf.candidate == Candidate::ResetBefore) {
        const T* hp = a.h + idx * n;
        const T* d = drh.data() + row * n;
        T* dprev = dh_next.data() + row * n;
        for (int64_t j = 0; j < n; ++j) {
          gr[j] = d[j] * hp[j];
          dprev[j] += d[j] * r[j];
        }
      }
      times_derivative(cf.gate, gr, r, n);
      if (fw) {
        set_block(a.grad_first + idx * fw, cf.reset_first, gr, n);
        set_block(a.grad_first + idx * fw, cf.update_first, gr + n, n);
      }
      if (tw) {
        set_block(a.grad_th + idx * tw, cf.reset_th, gr, n);
        set_block(a.grad_th + idx * tw, cf.update_th, gr + n, n);
      }
    }
    if (fw)
      matmul(rows, a.grad_first + here * fw, fw, a.w_first, true, dh_next.data(), n);
    if (tw) {
      matmul(rows, a.grad_th + here * tw, tw, a.w_th, false, dth.data(), n);
      for (int64_t row = 0; row < rows; ++row) {
        if (!live(a.lengths, b0 + row, t)) continue;
        const T* th = a.th + (here + row) * n;
        const T* d = dth.data() + row * n;
        T* dprev = dh_next.data() + row * n;
        for (int64_t j = 0; j < n; ++j) dprev[j] += d[j] * (T(1) - th[j] * th[j]);
      }
    }
    std::swap(dh, dh_next);
  }
  copy_row(a.grad_h0 + b0 * n, dh.data(), rows * n);
}

template void gru_forward(const GRUConfig&, const GRUArrays<float>&, int64_t, int64_t);
template void gru_forward(const GRUConfig&, const GRUArrays<double>&, int64_t, int64_t);
template void gru_backward(const GRUConfig&, const GRUArrays<float>&, int64_t, int64_t);
template void gru_backward(const GRUConfig&, const GRUArrays<double>&, int64_t, int64_t);

}  // namespace ablate
