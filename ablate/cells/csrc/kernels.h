// The recurrent kernels' interface: plain arrays, no torch headers.
//
// Each kernel runs one layer-direction's whole time loop on a slice of the batch rows
// [b0, b1); ops.cpp hands one slice to each thread, so a step costs a small matrix product and
// one pointwise pass with no Python, autograd or dispatcher work in between, and threads never
// wait on each other. Arrays are row-major and time-major, (T, B, width); h and c hold T + 1
// steps, the initial state first, and keep the last real step's state over padding, so the
// final state is always step T. Forward multiplies by the weights transposed, backward by the
// weights; either way each arrives as the Panels the matrix products read. Backward returns
// the gradients of the pre-activations; the weight gradients and the input's are one large
// matrix product each after the loop (ablate/cells/kernels.py).
// Keeping torch's headers out of these files keeps the one-time build short.
#pragma once

#include <cstdint>

namespace ablate {

// Activation codes, in the order of ablate.cells.kernels.ACTIVATIONS.
enum class Act : int64_t { Tanh, Sigmoid, Identity, Relu, Hardtanh, Softsign, Hardsigmoid };

// Whether BLAS's sgemm_/dgemm_ are exported by the libraries torch loaded.
bool has_blas();

// A matrix B (inner x cols) that rows are multiplied by, stored as column panels of `width`
// columns, each (inner x width) row-major and contiguous, the last zero-padded: a panel stays
// in the core's cache while a step's rows stream past it. Null where the spec has no such
// matrix.
template <typename T>
struct Panels {
  const T* data = nullptr;
  int64_t inner = 0, cols = 0, width = 0;
  explicit operator bool() const { return data != nullptr; }
};

// ---- LSTM family ------------------------------------------------------------------------
enum class Peep : int64_t { None, Prev, New };

// The spec resolved to N-row blocks of the stacked pre-activation (-1: the spec has no such
// gate) and codes, by ablate.cells.kernels.lstm_config.
struct LSTMConfig {
  static constexpr int64_t size = 12;
  int64_t in, fg, blk, out;
  bool coupled;  // f = 1 - i
  Peep peep_in, peep_fg, peep_out;
  Act g, k, gate, out_gate;

  explicit LSTMConfig(const int64_t* c)
      : in(c[0]), fg(c[1]), blk(c[2]), out(c[3]), coupled(c[4] != 0), peep_in(Peep(c[5])),
        peep_fg(Peep(c[6])), peep_out(Peep(c[7])), g(Act(c[8])), k(Act(c[9])), gate(Act(c[10])),
        out_gate(Act(c[11])) {}

  // Full gate recurrence feeds back every block but the block input, in block order.
  int64_t fed_index(int64_t block) const { return block - (block > blk ? 1 : 0); }
};

template <typename T>
struct LSTMArrays {
  int64_t steps, batch, m, n, width, fed_width;  // width = blocks * n; 0 fed without FGR
  // Forward keeps every step's act, c and fed for backward; else (inference) one step's act
  // and two steps' c and fed, the last step's c at index 1.
  bool keep;
  const int64_t* lengths;                       // (B) or null: no padding
  const T *x, *bias;                            // (T,B,m), (width)
  Panels<T> w_ih, w_hh, w_gg;                   // W^T (m,width); R^T or R; G^T or G, or none
  const T *peep_in, *peep_fg, *peep_out;        // (n) or null
  T *h, *c, *act, *fed;                         // (T+1,B,n) x2, (T,B,width), (T+1,B,fed)
  const T* grad_h;                              // (T,B,n): of h[1:]
  T *grad_pre, *grad_c, *grad_h0;               // (T,B,width); (B,n): of c[T] in, of c[0] out
  T *grad_peep, *grad_fed;                      // (chunks,3,n) summed per chunk; (T,B,fed)
  T* grad_a;                                    // (B,fed): of fed[T] in, of fed[0] out
};

template <typename T>
void lstm_forward(const LSTMConfig& cf, const LSTMArrays<T>& a, int64_t b0, int64_t b1);
template <typename T>
void lstm_backward(const LSTMConfig& cf, const LSTMArrays<T>& a, int64_t chunk, int64_t b0,
                   int64_t b1);

// ---- GRU family -------------------------------------------------------------------------
enum class Candidate : int64_t { InputOnly, ResetAfter, ResetBefore };

// "first" is the matrix multiplied by h_{t-1} at the start of a step (the gates' R rows, and
// the candidate's when the reset gate applies after R); "th" the one multiplied by
// tanh(h_{t-1}). Indices are their N-row blocks, -1 where a gate takes no such term.
struct GRUConfig {
  static constexpr int64_t size = 9;
  int64_t reset_first, update_first, candidate_first, reset_th, update_th;
  Candidate candidate;
  bool update_new;  // h_t = z * h~ + (1 - z) * h (MUT1-3) instead of z * h + (1 - z) * h~
  Act gate, block;

  explicit GRUConfig(const int64_t* c)
      : reset_first(c[0]), update_first(c[1]), candidate_first(c[2]), reset_th(c[3]),
        update_th(c[4]), candidate(Candidate(c[5])), update_new(c[6] != 0), gate(Act(c[7])),
        block(Act(c[8])) {}
};

template <typename T>
struct GRUArrays {
  int64_t steps, batch, n, first_width, th_width;  // 0 where there is no such matrix
  bool keep;  // forward keeps every step's act, aux, th for backward; else one step's
  const int64_t* lengths;
  const T* xp;  // (T,B,3n): every input-only term of reset, update, candidate (biases too)
  Panels<T> w_first, w_candidate, w_th;  // transposed in forward
  const T* bias_hn;                      // or null
  T* h;    // (T+1,B,n)
  T* act;  // (T or 1,B,3n): r, z, h~
  T* aux;  // (T or 1,B,n): what r multiplies, R_h h + b_hn (after) or r * h (before); or null
  T* th;   // (T or 1,B,n): tanh(h_{t-1}), or null
  const T* grad_h;
  T *grad_xp, *grad_first, *grad_th, *grad_h0;  // (T,B,3n), (T,B,first), (T,B,th), (B,n)
};

template <typename T>
void gru_forward(const GRUConfig& cf, const GRUArrays<T>& a, int64_t b0, int64_t b1);
template <typename T>
void gru_backward(const GRUConfig& cf, const GRUArrays<T>& a, int64_t b0, int64_t b1);

// ---- Elman ------------------------------------------------------------------------------
template <typename T>
struct ElmanArrays {
  int64_t steps, batch, m, n;
  const int64_t* lengths;
  const T *x, *bias;         // (T,B,m), (n)
  Panels<T> w_ih, w_hh;      // W^T (m,n); R^T or R
  T* h;                // (T+1,B,n)
  const T* grad_h;
  T *grad_pre, *grad_h0;  // (T,B,n), (B,n)
};

template <typename T>
void elman_forward(Act act, const ElmanArrays<T>& a, int64_t b0, int64_t b1);
template <typename T>
void elman_backward(Act act, const ElmanArrays<T>& a, int64_t b0, int64_t b1);

// ---- sLSTM ------------------------------------------------------------------------------
// The four blocks of the pre-activation are i~, f~, z~, o~; R arrives dense (4n, n), its
// off-head blocks zero (ablate.cells.kernels builds it from the heads).
struct SLSTMConfig {
  static constexpr int64_t size = 3;
  Act block, out_gate;
  bool exp_forget;  // log f = f~ rather than log sigmoid(f~)

  explicit SLSTMConfig(const int64_t* c)
      : block(Act(c[0])), out_gate(Act(c[1])), exp_forget(c[2] != 0) {}
};

template <typename T>
struct SLSTMArrays {
  int64_t steps, batch, m, n;
  const int64_t* lengths;
  const T *x, *bias;                 // (T,B,m), (4n)
  Panels<T> w_ih, w_hh;              // W^T (m,4n); R^T (n,4n) forward, R (4n,n) backward
  T *h, *c, *nrm, *m_state;          // (T+1,B,n) each, the initial state first
  T* act;                            // (T,B,4n): i~, f~ raw; z, o activated
  const T* grad_h;                   // (T,B,n): of h[1:]
  T* grad_pre;                       // (T,B,4n)
  T *grad_h0, *grad_c, *grad_n, *grad_m;  // (B,n); c, n, m: of step T in, of step 0 out
};

template <typename T>
void slstm_forward(const SLSTMConfig& cf, const SLSTMArrays<T>& a, int64_t b0, int64_t b1);
template <typename T>
void slstm_backward(const SLSTMConfig& cf, const SLSTMArrays<T>& a, int64_t b0, int64_t b1);

}  // namespace ablate
