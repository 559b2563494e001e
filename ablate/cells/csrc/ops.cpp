// The kernels as torch operators, torch.ops.ablate.*: check the tensors, allocate the outputs,
// split the batch rows across threads and run the kernels of kernels.h on each slice.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <vector>

#include "kernels.h"

namespace ablate {
namespace {

using MaybeTensor = std::optional<at::Tensor>;

// Trials: K models of one cell trained as one (ablate.stack). The batch holds K trials' rows,
// trial k's in [k rows, (k + 1) rows), and every weight a leading K dimension, trial k's at
// index k. ``trials`` 0 is one model with unstacked weights, the same as K = 1.
struct Trials {
  int64_t count = 1, rows = 0;  // rows: each trial's batch rows
  bool stacked = false;

  // A weight's expected shape: K in front where stacked.
  std::vector<int64_t> shape(std::initializer_list<int64_t> dims) const {
    std::vector<int64_t> out;
    if (stacked) out.push_back(count);
    out.insert(out.end(), dims);
    return out;
  }
};

Trials trials_of(int64_t trials, int64_t batch) {
  TORCH_CHECK(trials >= 0, "ablate kernels: trials must be >= 0, got ", trials);
  Trials tr;
  tr.stacked = trials > 0;
  tr.count = std::max<int64_t>(trials, 1);
  TORCH_CHECK(batch % tr.count == 0, "ablate kernels: ", batch, " batch rows do not split into ",
              tr.count, " trials");
  tr.rows = batch / tr.count;
  return tr;
}

// Slices of a trial's rows: one per thread, but fewer where a slice would do less than ~1M
// multiply-adds over the whole loop (tens of microseconds), too little to repay a thread.
int64_t chunk_count(const Trials& tr, int64_t work_per_row) {
  const int64_t rows = tr.rows;
  const int64_t by_work = std::max<int64_t>(1, rows * work_per_row / (int64_t(1) << 20));
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads() / tr.count);
  return std::max<int64_t>(1, std::min({rows, threads, by_work}));
}

// fn(chunk, trial, first_row, end_row) on each slice, in parallel: each thread runs the whole
// time loop on its rows; a slice never spans two trials. (Without -fopenmp at::parallel_for
// would use one thread.)
template <typename F>
void for_each_chunk(const Trials& tr, int64_t per_trial, const F& fn) {
  at::parallel_for(0, tr.count * per_trial, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t k = c / per_trial, j = c % per_trial, base = k * tr.rows;
      fn(c, k, base + tr.rows * j / per_trial, base + tr.rows * (j + 1) / per_trial);
    }
  });
}

// The kernels index raw memory: every tensor must be a contiguous CPU tensor of the input's
// dtype and of the expected shape.
void check(const at::Tensor& t, const at::Tensor& like, const char* name, at::IntArrayRef shape) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == like.scalar_type(),
              "ablate kernels: ", name, " must be a contiguous CPU tensor of ",
              like.scalar_type());
  TORCH_CHECK(t.sizes() == shape, "ablate kernels: ", name, " has shape ", t.sizes(),
              ", expected ", shape);
}

void check(const MaybeTensor& t, const at::Tensor& like, const char* name,
           at::IntArrayRef shape) {
  if (t) check(*t, like, name, shape);
}

const int64_t* lengths_data(const MaybeTensor& lengths, int64_t batch) {
  if (!lengths) return nullptr;
  TORCH_CHECK(lengths->device().is_cpu() && lengths->is_contiguous() &&
                  lengths->scalar_type() == at::kLong && lengths->sizes() == at::IntArrayRef{batch},
              "ablate kernels: lengths must be a contiguous CPU int64 tensor of shape (", batch,
              ")");
  return lengths->data_ptr<int64_t>();
}

// A weight as the kernels' matrix products read it (kernels.h): w^T in forward, w in backward,
// in panels of 64 columns where the whole would not fit in a core's L2 cache (there this
// makes the products ~10% faster), else in one panel.
struct PanelTensor {
  at::Tensor data;
  int64_t inner = 0, cols = 0, width = 0;

  template <typename T>
  Panels<T> view() const {
    return {data.defined() ? data.data_ptr<T>() : nullptr, inner, cols, width};
  }
};

PanelTensor panels(const at::Tensor& w, bool transpose) {
  const auto b = transpose ? w.t() : w;
  const int64_t inner = b.size(0), cols = b.size(1);
  const bool fits = inner * cols * b.element_size() <= (int64_t(1) << 20);
  const int64_t width = std::max<int64_t>(1, fits ? cols : std::min<int64_t>(64, cols));
  const int64_t count = (cols + width - 1) / width;
  auto out = at::zeros({count, inner, width}, b.options());
  for (int64_t p = 0; p < count; ++p) {
    const int64_t first = p * width, used = std::min(width, cols - first);
    out.select(0, p).narrow(1, 0, used).copy_(b.narrow(1, first, used));
  }
  return {out, inner, cols, width};
}

// Each trial's panels of an optional weight (empty where absent).
std::vector<PanelTensor> panels(const MaybeTensor& w, bool transpose, const Trials& tr) {
  std::vector<PanelTensor> out(tr.count);
  if (w)
    for (int64_t k = 0; k < tr.count; ++k)
      out[k] = panels(tr.stacked ? w->select(0, k) : *w, transpose);
  return out;
}

// Trial k's part of a per-trial vector (a bias, a peephole) of `size` entries, or null.
template <typename T>
const T* at_trial(const T* p, int64_t k, int64_t size) {
  return p ? p + k * size : nullptr;
}

// Trial k's view of a call's arrays: its recurrent weights and its per-unit vectors (null
// stays null). The input weights, which only forward reads, the caller sets.
template <typename T>
LSTMArrays<T> lstm_trial(LSTMArrays<T> a, int64_t k, const std::vector<PanelTensor>& w_hh,
                         const std::vector<PanelTensor>& w_gg) {
  a.w_hh = w_hh[k].view<T>();
  a.w_gg = w_gg[k].view<T>();
  a.bias = at_trial(a.bias, k, a.width);
  a.peep_in = at_trial(a.peep_in, k, a.n);
  a.peep_fg = at_trial(a.peep_fg, k, a.n);
  a.peep_out = at_trial(a.peep_out, k, a.n);
  return a;
}

template <typename T>
GRUArrays<T> gru_trial(GRUArrays<T> a, int64_t k, const std::vector<PanelTensor>& w_first,
                       const std::vector<PanelTensor>& w_candidate,
                       const std::vector<PanelTensor>& w_th) {
  a.w_first = w_first[k].view<T>();
  a.w_candidate = w_candidate[k].view<T>();
  a.w_th = w_th[k].view<T>();
  a.bias_hn = at_trial(a.bias_hn, k, a.n);
  return a;
}

template <typename T>
T* data(const MaybeTensor& t) {
  return t ? t->data_ptr<T>() : nullptr;
}

template <typename T>
T* data(const at::Tensor& t) {
  return t.data_ptr<T>();
}

// fn(T{}) with T the C++ type of t's dtype.
template <typename F>
void dispatch(const at::Tensor& t, const F& fn) {
  TORCH_CHECK(has_blas(), "ablate kernels: torch exports no BLAS sgemm_/dgemm_ here");
  if (t.scalar_type() == at::kFloat) {
    fn(float{});
  } else {
    TORCH_CHECK(t.scalar_type() == at::kDouble, "ablate kernels: float32 or float64 only, got ",
                t.scalar_type());
    fn(double{});
  }
}

template <typename Config>
Config config_of(at::IntArrayRef config, const char* family) {
  TORCH_CHECK(int64_t(config.size()) == Config::size, "ablate kernels: ", family, " config has ",
              config.size(), " entries, expected ", Config::size);
  return Config(config.data());
}

// keep: a backward will follow, so forward keeps every step's activations (else one step's).
// a0: the gate activations full gate recurrence starts from (the last call's; zeros if none).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_forward_op(
    const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& bias, const at::Tensor& h0,
    const at::Tensor& c0, const MaybeTensor& a0, const at::Tensor& w_hh,
    const MaybeTensor& w_gg, const MaybeTensor& peep_in, const MaybeTensor& peep_fg,
    const MaybeTensor& peep_out, const MaybeTensor& lengths, at::IntArrayRef config,
    bool keep, int64_t trials) {
  const auto cf = config_of<LSTMConfig>(config, "lstm");
  TORCH_CHECK(x.dim() == 3 && w_hh.dim() >= 2, "ablate kernels: x must be (T, B, M)");
  const int64_t steps = x.size(0), batch = x.size(1), m = x.size(2);
  const auto tr = trials_of(trials, batch);
  const int64_t width = w_hh.size(-2), n = w_hh.size(-1);
  const int64_t fed_width = w_gg ? w_gg->size(-1) : 0;
  check(x, x, "x", {steps, batch, m});
  check(w_ih, x, "weight_ih", tr.shape({width, m}));
  check(bias, x, "bias", tr.shape({width}));
  check(h0, x, "h0", {batch, n});
  check(c0, x, "c0", {batch, n});
  check(w_hh, x, "weight_hh", tr.shape({width, n}));
  check(w_gg, x, "weight_gg", tr.shape({fed_width, fed_width}));
  TORCH_CHECK(!a0 || w_gg, "ablate kernels: a0 without weight_gg");
  check(a0, x, "a0", {batch, fed_width});
  for (const auto* p : {&peep_in, &peep_fg, &peep_out}) check(*p, x, "peephole", tr.shape({n}));
  const auto w_ih_p = panels(w_ih, true, tr), w_hh_p = panels(w_hh, true, tr),
             w_gg_p = panels(w_gg, true, tr);
  const int64_t states = keep ? steps + 1 : 2;
  auto h = at::empty({steps + 1, batch, n}, x.options());
  auto c = at::empty({states, batch, n}, x.options());
  auto act = at::empty({keep ? steps : 1, batch, width}, x.options());
  auto fed = at::empty({w_gg ? states : 0, batch, fed_width}, x.options());
  h[0].copy_(h0);
  c[0].copy_(c0);
  if (a0) {
    fed[0].copy_(*a0);
  } else if (w_gg) {
    fed[0].zero_();
  }
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    const LSTMArrays<T> a{steps, batch, m, n, width, fed_width, keep,
                          lengths_data(lengths, batch), data<T>(x), data<T>(bias),
                          Panels<T>{}, Panels<T>{}, Panels<T>{},
                          data<T>(peep_in), data<T>(peep_fg), data<T>(peep_out),
                          data<T>(h), data<T>(c), data<T>(act), w_gg ? data<T>(fed) : nullptr,
                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    for_each_chunk(tr, chunk_count(tr, steps * width * (m + n)),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     auto ak = lstm_trial(a, k, w_hh_p, w_gg_p);
                     ak.w_ih = w_ih_p[k].view<T>();
                     lstm_forward(cf, ak, b0, b1);
                   });
  });
  if (!keep && steps % 2 == 0) {  // the last step's c and fed at index -1
    c[1].copy_(c[0]);
    if (w_gg) fed[1].copy_(fed[0]);
  }
  return {h, c, act, fed};
}

// grad_fed_last: the gradient of the last step's fed-back activations (zeros if none).
// grad_peepholes: (3, N), or (K, 3, N) for stacked trials.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
lstm_backward_op(
    const at::Tensor& grad_h, const at::Tensor& grad_c_last, const MaybeTensor& grad_fed_last,
    const at::Tensor& c,
    const at::Tensor& act, const at::Tensor& w_hh, const MaybeTensor& w_gg,
    const MaybeTensor& peep_in, const MaybeTensor& peep_fg, const MaybeTensor& peep_out,
    const MaybeTensor& lengths, at::IntArrayRef config, int64_t trials) {
  const auto cf = config_of<LSTMConfig>(config, "lstm");
  TORCH_CHECK(act.dim() == 3 && c.dim() == 3, "ablate kernels: act must be (T, B, G N)");
  const int64_t steps = act.size(0), batch = act.size(1), width = act.size(2), n = c.size(2);
  const auto tr = trials_of(trials, batch);
  const int64_t fed_width = w_gg ? w_gg->size(-1) : 0;
  check(act, act, "act", {steps, batch, width});
  check(grad_h, act, "grad_h", {steps, batch, n});
  check(grad_c_last, act, "grad_c", {batch, n});
  check(c, act, "c", {steps + 1, batch, n});
  check(w_hh, act, "weight_hh", tr.shape({width, n}));
  check(w_gg, act, "weight_gg", tr.shape({fed_width, fed_width}));
  TORCH_CHECK(!grad_fed_last || w_gg, "ablate kernels: grad_fed without weight_gg");
  check(grad_fed_last, act, "grad_fed", {batch, fed_width});
  for (const auto* p : {&peep_in, &peep_fg, &peep_out}) check(*p, act, "peephole", tr.shape({n}));
  const auto w_hh_p = panels(w_hh, false, tr), w_gg_p = panels(w_gg, false, tr);
  auto grad_pre = at::empty({steps, batch, width}, act.options());
  auto grad_fed = at::empty({w_gg ? steps : 0, batch, fed_width}, act.options());
  auto grad_h0 = at::empty({batch, n}, act.options());
  auto grad_c = grad_c_last.clone();
  auto grad_a = grad_fed_last ? grad_fed_last->clone() : at::zeros({batch, fed_width},
                                                                   act.options());
  const int64_t per_trial = chunk_count(tr, steps * width * n);
  auto grad_peep = at::zeros({tr.count, per_trial, 3, n}, act.options());
  dispatch(act, [&](auto tag) {
    using T = decltype(tag);
    const LSTMArrays<T> a{steps, batch, 0, n, width, fed_width, true,
                          lengths_data(lengths, batch), nullptr, nullptr,
                          Panels<T>{}, Panels<T>{}, Panels<T>{},
                          data<T>(peep_in), data<T>(peep_fg), data<T>(peep_out),
                          nullptr, data<T>(c), data<T>(act), nullptr,
                          data<T>(grad_h), data<T>(grad_pre), data<T>(grad_c), data<T>(grad_h0),
                          data<T>(grad_peep), w_gg ? data<T>(grad_fed) : nullptr,
                          w_gg ? data<T>(grad_a) : nullptr};
    for_each_chunk(tr, per_trial, [&](int64_t chunk, int64_t k, int64_t b0, int64_t b1) {
      lstm_backward(cf, lstm_trial(a, k, w_hh_p, w_gg_p), chunk, b0, b1);
    });
  });
  auto peep_sums = grad_peep.sum(1);
  return {grad_pre, grad_h0, grad_c, tr.stacked ? peep_sums : peep_sums[0], grad_fed, grad_a};
}

// The GRU family's recurrent matrices: each present where the config needs it, each of the
// shape it needs. Returns (first_width, th_width), 0 where a matrix is absent.
std::pair<int64_t, int64_t> check_gru_weights(const GRUConfig& cf, const at::Tensor& like,
                                              int64_t n, const Trials& tr,
                                              const MaybeTensor& w_first,
                                              const MaybeTensor& w_candidate,
                                              const MaybeTensor& w_th) {
  const int64_t first_width = w_first ? w_first->size(-2) : 0;
  const int64_t th_width = w_th ? w_th->size(-2) : 0;
  TORCH_CHECK(cf.candidate != Candidate::ResetBefore || w_candidate,
              "ablate kernels: reset before R needs weight_candidate");
  TORCH_CHECK(cf.candidate != Candidate::ResetAfter || w_first,
              "ablate kernels: reset after R needs weight_first");
  check(w_first, like, "weight_first", tr.shape({first_width, n}));
  check(w_candidate, like, "weight_candidate", tr.shape({n, n}));
  check(w_th, like, "weight_th", tr.shape({th_width, n}));
  return {first_width, th_width};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_forward_op(
    const at::Tensor& xp, const at::Tensor& h0, const MaybeTensor& w_first,
    const MaybeTensor& w_candidate, const MaybeTensor& w_th, const MaybeTensor& bias_hn,
    const MaybeTensor& lengths, at::IntArrayRef config, bool keep, int64_t trials) {
  const auto cf = config_of<GRUConfig>(config, "gru");
  TORCH_CHECK(xp.dim() == 3 && h0.dim() == 2, "ablate kernels: xp must be (T, B, 3 N)");
  const int64_t steps = xp.size(0), batch = xp.size(1), n = h0.size(1);
  const auto tr = trials_of(trials, batch);
  const auto [first_width, th_width] =
      check_gru_weights(cf, xp, n, tr, w_first, w_candidate, w_th);
  const bool has_aux = cf.candidate != Candidate::InputOnly;
  TORCH_CHECK(cf.candidate != Candidate::ResetAfter || bias_hn,
              "ablate kernels: reset after R needs bias_hn");
  check(xp, xp, "xp", {steps, batch, 3 * n});
  check(h0, xp, "h0", {batch, n});
  check(bias_hn, xp, "bias_hn", tr.shape({n}));
  auto h = at::empty({steps + 1, batch, n}, xp.options());
  const int64_t kept = keep ? steps : 1;
  auto act = at::empty({kept, batch, 3 * n}, xp.options());
  auto aux = at::empty({has_aux ? kept : 0, batch, n}, xp.options());
  auto th = at::empty({w_th ? kept : 0, batch, n}, xp.options());
  const auto w_first_p = panels(w_first, true, tr),
             w_candidate_p = panels(w_candidate, true, tr), w_th_p = panels(w_th, true, tr);
  h[0].copy_(h0);
  dispatch(xp, [&](auto tag) {
    using T = decltype(tag);
    const GRUArrays<T> a{steps, batch, n, first_width, th_width, keep,
                         lengths_data(lengths, batch), data<T>(xp), Panels<T>{}, Panels<T>{},
                         Panels<T>{}, data<T>(bias_hn), data<T>(h), data<T>(act),
                         has_aux ? data<T>(aux) : nullptr, w_th ? data<T>(th) : nullptr,
                         nullptr, nullptr, nullptr, nullptr, nullptr};
    for_each_chunk(tr, chunk_count(tr, steps * 3 * n * n),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     gru_forward(cf, gru_trial(a, k, w_first_p, w_candidate_p, w_th_p), b0, b1);
                   });
  });
  return {h, act, aux, th};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gru_backward_op(
    const at::Tensor& grad_h, const at::Tensor& h, const at::Tensor& act, const at::Tensor& aux,
    const at::Tensor& th, const MaybeTensor& w_first, const MaybeTensor& w_candidate,
    const MaybeTensor& w_th, const MaybeTensor& lengths, at::IntArrayRef config,
    int64_t trials) {
  const auto cf = config_of<GRUConfig>(config, "gru");
  TORCH_CHECK(act.dim() == 3 && h.dim() == 3, "ablate kernels: act must be (T, B, 3 N)");
  const int64_t steps = act.size(0), batch = act.size(1), n = h.size(2);
  const auto tr = trials_of(trials, batch);
  const auto [first_width, th_width] =
      check_gru_weights(cf, act, n, tr, w_first, w_candidate, w_th);
  const bool has_aux = cf.candidate != Candidate::InputOnly;
  check(act, act, "act", {steps, batch, 3 * n});
  check(grad_h, act, "grad_h", {steps, batch, n});
  check(h, act, "h", {steps + 1, batch, n});
  check(aux, act, "aux", {has_aux ? steps : 0, batch, n});
  check(th, act, "th", {w_th ? steps : 0, batch, n});
  const auto w_first_p = panels(w_first, false, tr),
             w_candidate_p = panels(w_candidate, false, tr), w_th_p = panels(w_th, false, tr);
  auto grad_xp = at::empty({steps, batch, 3 * n}, act.options());
  auto grad_first = at::empty({w_first ? steps : 0, batch, first_width}, act.options());
  auto grad_th = at::empty({w_th ? steps : 0, batch, th_width}, act.options());
  auto grad_h0 = at::empty({batch, n}, act.options());
  dispatch(act, [&](auto tag) {
    using T = decltype(tag);
    const GRUArrays<T> a{steps, batch, n, first_width, th_width, true,
                         lengths_data(lengths, batch), nullptr, Panels<T>{}, Panels<T>{},
                         Panels<T>{}, nullptr, data<T>(h), data<T>(act),
                         has_aux ? data<T>(aux) : nullptr, w_th ? data<T>(th) : nullptr,
                         data<T>(grad_h), data<T>(grad_xp),
                         w_first ? data<T>(grad_first) : nullptr,
                         w_th ? data<T>(grad_th) : nullptr, data<T>(grad_h0)};
    for_each_chunk(tr, chunk_count(tr, steps * 3 * n * n),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     gru_backward(cf, gru_trial(a, k, w_first_p, w_candidate_p, w_th_p), b0, b1);
                   });
  });
  return {grad_xp, grad_first, grad_th, grad_h0};
}

at::Tensor elman_forward_op(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& bias,
                            const at::Tensor& h0, const at::Tensor& w_hh,
                            const MaybeTensor& lengths, int64_t activation, int64_t trials) {
  TORCH_CHECK(x.dim() == 3 && h0.dim() == 2, "ablate kernels: x must be (T, B, M)");
  const int64_t steps = x.size(0), batch = x.size(1), m = x.size(2), n = h0.size(1);
  const auto tr = trials_of(trials, batch);
  check(x, x, "x", {steps, batch, m});
  check(w_ih, x, "weight_ih", tr.shape({n, m}));
  check(bias, x, "bias", tr.shape({n}));
  check(h0, x, "h0", {batch, n});
  check(w_hh, x, "weight_hh", tr.shape({n, n}));
  const auto w_ih_p = panels(w_ih, true, tr), w_hh_p = panels(w_hh, true, tr);
  auto h = at::empty({steps + 1, batch, n}, x.options());
  h[0].copy_(h0);
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    const ElmanArrays<T> a{steps, batch, m, n, lengths_data(lengths, batch), data<T>(x),
                           data<T>(bias), Panels<T>{}, Panels<T>{}, data<T>(h),
                           nullptr, nullptr, nullptr};
    for_each_chunk(tr, chunk_count(tr, steps * n * (m + n)),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     auto ak = a;
                     ak.w_ih = w_ih_p[k].view<T>();
                     ak.w_hh = w_hh_p[k].view<T>();
                     ak.bias = at_trial(a.bias, k, n);
                     elman_forward(Act(activation), ak, b0, b1);
                   });
  });
  return h;
}

std::tuple<at::Tensor, at::Tensor> elman_backward_op(const at::Tensor& grad_h,
                                                     const at::Tensor& h, const at::Tensor& w_hh,
                                                     const MaybeTensor& lengths,
                                                     int64_t activation, int64_t trials) {
  TORCH_CHECK(h.dim() == 3, "ablate kernels: h must be (T + 1, B, N)");
  const int64_t steps = h.size(0) - 1, batch = h.size(1), n = h.size(2);
  const auto tr = trials_of(trials, batch);
  check(h, h, "h", {steps + 1, batch, n});
  check(grad_h, h, "grad_h", {steps, batch, n});
  check(w_hh, h, "weight_hh", tr.shape({n, n}));
  const auto w_hh_p = panels(w_hh, false, tr);
  auto grad_pre = at::empty({steps, batch, n}, h.options());
  auto grad_h0 = at::empty({batch, n}, h.options());
  dispatch(h, [&](auto tag) {
    using T = decltype(tag);
    const ElmanArrays<T> a{steps, batch, 0, n, lengths_data(lengths, batch), nullptr, nullptr,
                           Panels<T>{}, Panels<T>{}, data<T>(h), data<T>(grad_h),
                           data<T>(grad_pre), data<T>(grad_h0)};
    for_each_chunk(tr, chunk_count(tr, steps * n * n),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     auto ak = a;
                     ak.w_hh = w_hh_p[k].view<T>();
                     elman_backward(Act(activation), ak, b0, b1);
                   });
  });
  return {grad_pre, grad_h0};
}

// The state (h, c, n, m) at every step, and every step's pre-activations (z, o activated).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> slstm_forward_op(
    const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& bias, const at::Tensor& h0,
    const at::Tensor& c0, const at::Tensor& n0, const at::Tensor& m0, const at::Tensor& w_hh,
    const MaybeTensor& lengths, at::IntArrayRef config, int64_t trials) {
  const auto cf = config_of<SLSTMConfig>(config, "slstm");
  TORCH_CHECK(x.dim() == 3 && h0.dim() == 2, "ablate kernels: x must be (T, B, M)");
  const int64_t steps = x.size(0), batch = x.size(1), m = x.size(2), n = h0.size(1);
  const auto tr = trials_of(trials, batch);
  check(x, x, "x", {steps, batch, m});
  check(w_ih, x, "weight_ih", tr.shape({4 * n, m}));
  check(bias, x, "bias", tr.shape({4 * n}));
  check(w_hh, x, "weight_hh", tr.shape({4 * n, n}));
  std::vector<at::Tensor> states;
  for (const auto& [s, name] : {std::pair{h0, "h0"}, {c0, "c0"}, {n0, "n0"}, {m0, "m0"}}) {
    check(s, x, name, {batch, n});
    auto all = at::empty({steps + 1, batch, n}, x.options());
    all[0].copy_(s);
    states.push_back(all);
  }
  auto act = at::empty({steps, batch, 4 * n}, x.options());
  const auto w_ih_p = panels(w_ih, true, tr), w_hh_p = panels(w_hh, true, tr);
  dispatch(x, [&](auto tag) {
    using T = decltype(tag);
    const SLSTMArrays<T> a{steps, batch, m, n, lengths_data(lengths, batch), data<T>(x),
                           data<T>(bias), Panels<T>{}, Panels<T>{}, data<T>(states[0]),
                           data<T>(states[1]), data<T>(states[2]), data<T>(states[3]),
                           data<T>(act), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    for_each_chunk(tr, chunk_count(tr, steps * 4 * n * (m + n)),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     auto ak = a;
                     ak.w_ih = w_ih_p[k].view<T>();
                     ak.w_hh = w_hh_p[k].view<T>();
                     ak.bias = at_trial(a.bias, k, 4 * n);
                     slstm_forward(cf, ak, b0, b1);
                   });
  });
  return {states[0], states[1], states[2], states[3], act};
}

// The pre-activations' gradients and those of the initial state, from the outputs' (every h)
// and the final c, n and m's.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> slstm_backward_op(
    const at::Tensor& grad_h, const at::Tensor& grad_c, const at::Tensor& grad_n,
    const at::Tensor& grad_m, const at::Tensor& h, const at::Tensor& c, const at::Tensor& nrm,
    const at::Tensor& m_state, const at::Tensor& act, const at::Tensor& w_hh,
    const MaybeTensor& lengths, at::IntArrayRef config, int64_t trials) {
  const auto cf = config_of<SLSTMConfig>(config, "slstm");
  TORCH_CHECK(h.dim() == 3, "ablate kernels: h must be (T + 1, B, N)");
  const int64_t steps = h.size(0) - 1, batch = h.size(1), n = h.size(2);
  const auto tr = trials_of(trials, batch);
  for (const auto& [s, name] : {std::pair{h, "h"}, {c, "c"}, {nrm, "n"}, {m_state, "m"}})
    check(s, h, name, {steps + 1, batch, n});
  check(act, h, "act", {steps, batch, 4 * n});
  check(grad_h, h, "grad_h", {steps, batch, n});
  check(w_hh, h, "weight_hh", tr.shape({4 * n, n}));
  std::vector<at::Tensor> grads;  // in: of the final state; out: of the initial one
  for (const auto& [g, name] : {std::pair{grad_c, "grad_c"}, {grad_n, "grad_n"},
                                {grad_m, "grad_m"}}) {
    check(g, h, name, {batch, n});
    grads.push_back(g.clone());
  }
  const auto w_hh_p = panels(w_hh, false, tr);
  auto grad_pre = at::empty({steps, batch, 4 * n}, h.options());
  auto grad_h0 = at::empty({batch, n}, h.options());
  dispatch(h, [&](auto tag) {
    using T = decltype(tag);
    const SLSTMArrays<T> a{steps, batch, 0, n, lengths_data(lengths, batch), nullptr, nullptr,
                           Panels<T>{}, Panels<T>{}, data<T>(h), data<T>(c), data<T>(nrm),
                           data<T>(m_state), data<T>(act), data<T>(grad_h), data<T>(grad_pre),
                           data<T>(grad_h0), data<T>(grads[0]), data<T>(grads[1]),
                           data<T>(grads[2])};
    for_each_chunk(tr, chunk_count(tr, steps * 4 * n * n),
                   [&](int64_t, int64_t k, int64_t b0, int64_t b1) {
                     auto ak = a;
                     ak.w_hh = w_hh_p[k].view<T>();
                     slstm_backward(cf, ak, b0, b1);
                   });
  });
  return {grad_pre, grad_h0, grads[0], grads[1], grads[2]};
}

}  // namespace
}  // namespace ablate

// Schemas spelled out so that errors name the arguments.
TORCH_LIBRARY(ablate, m) {
  m.def("has_blas() -> bool", &ablate::has_blas);
  m.def("lstm_forward(Tensor x, Tensor weight_ih, Tensor bias, Tensor h0, Tensor c0, "
        "Tensor? a0, Tensor weight_hh, "
        "Tensor? weight_gg, "
        "Tensor? peephole_input, Tensor? peephole_forget, Tensor? peephole_output, "
        "Tensor? lengths, int[] config, bool keep, int trials=0) -> (Tensor h, Tensor c, Tensor act, "
        "Tensor fed)",
        &ablate::lstm_forward_op);
  m.def("lstm_backward(Tensor grad_h, Tensor grad_c, Tensor? grad_fed, Tensor c, Tensor act, "
        "Tensor weight_hh, Tensor? weight_gg, Tensor? peephole_input, Tensor? peephole_forget, "
        "Tensor? peephole_output, Tensor? lengths, int[] config, int trials=0) -> (Tensor grad_pre, "
        "Tensor grad_h0, Tensor grad_c0, Tensor grad_peepholes, Tensor grad_fed, "
        "Tensor grad_a0)",
        &ablate::lstm_backward_op);
  m.def("gru_forward(Tensor xp, Tensor h0, Tensor? weight_first, Tensor? weight_candidate, "
        "Tensor? weight_th, Tensor? bias_hn, Tensor? lengths, int[] config, bool keep, "
        "int trials=0) -> "
        "(Tensor h, Tensor act, Tensor aux, Tensor th)",
        &ablate::gru_forward_op);
  m.def("gru_backward(Tensor grad_h, Tensor h, Tensor act, Tensor aux, Tensor th, "
        "Tensor? weight_first, Tensor? weight_candidate, Tensor? weight_th, Tensor? lengths, "
        "int[] config, int trials=0) -> (Tensor grad_xp, Tensor grad_first, Tensor grad_th, "
        "Tensor grad_h0)",
        &ablate::gru_backward_op);
  m.def("slstm_forward(Tensor x, Tensor weight_ih, Tensor bias, Tensor h0, Tensor c0, "
        "Tensor n0, Tensor m0, Tensor weight_hh, Tensor? lengths, int[] config, int trials=0) -> "
        "(Tensor h, Tensor c, Tensor n, Tensor m, Tensor act)",
        &ablate::slstm_forward_op);
  m.def("slstm_backward(Tensor grad_h, Tensor grad_c, Tensor grad_n, Tensor grad_m, Tensor h, "
        "Tensor c, Tensor n, Tensor m, Tensor act, Tensor weight_hh, Tensor? lengths, "
        "int[] config, int trials=0) -> (Tensor grad_pre, Tensor grad_h0, Tensor grad_c0, "
        "Tensor grad_n0, Tensor grad_m0)",
        &ablate::slstm_backward_op);
  m.def("elman_forward(Tensor x, Tensor weight_ih, Tensor bias, Tensor h0, Tensor weight_hh, "
        "Tensor? lengths, int activation, int trials=0) -> Tensor h",
        &ablate::elman_forward_op);
  m.def("elman_backward(Tensor grad_h, Tensor h, Tensor weight_hh, Tensor? lengths, "
        "int activation, int trials=0) -> (Tensor grad_pre, Tensor grad_h0)",
        &ablate::elman_backward_op);
}
