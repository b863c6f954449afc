#pragma once
// Tuned-lens training (docs/lenses.md), the recipe of the reference package (tuned-lens 0.2):
//   loss_i   = mean over tokens of KL(p_final ‖ p_lens,i),  p_lens,i = softmax(W_U · norm(h + A_i h + b_i)),
//              h = hidden_states[i] (translator i reads the input of block i)
//   gradient = Σ_i ∇loss_i, clipped to global norm 1.0 over all translators
//   SGD with Nesterov momentum 0.9, lr = lr_scale · (1 − 0.9) with lr_scale 1.0, weight decay 1e-3
//   (added to the gradient, as torch.optim.SGD does), linear decay of lr to 0 over `steps`.
// Data: token sequences; step k uses sequences k·S .. k·S+S−1 (mod the number of sequences), so
// a resumed run sees exactly what an uninterrupted one would (lens/train_data.hpp packs and
// shuffles them).
//
// Backward pass for one token (z = h + A h + b, r = 1/sqrt(mean(z²) + eps), n = g ⊙ z · r):
//   dlogits = (q − p) / tokens,  dn = W_Uᵀ dlogits,
//   dz = r · (g ⊙ dn) − r³ · z · Σ_j(g_j dn_j z_j) / H,   dA += dz hᵀ,   db += dz.
// Every step of it runs on a block of up to `rows_per_block` tokens at once: the products
// (translator, unembedding, W_Uᵀ dlogits, Σ_t dz_t h_tᵀ) are kernels::gemm / gemm_packed calls
// (threaded, bit-reproducible whatever the thread count), the per-token parts (KL row, RMSNorm
// backward) run row-parallel. Hidden states and final distributions are computed per micro-batch of
// sequences and dropped after use: memory is bounded by the block, not by the step.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/staged_files.hpp"
#include "fathom/io/json.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/kernels/bf16dot.hpp"
#include "fathom/kernels/kl_row.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/packed_panels.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/lens/site.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/model/session.hpp"

namespace fathom::lens {

struct TrainOptions {
  int steps = 250;            // optimizer steps (the linear decay reaches 0 at `steps`)
  size_t seqs_per_step = 8;   // sequences per step
  double lr_scale = 1.0;      // lr = lr_scale · (1 − momentum)
  double momentum = 0.9;
  double weight_decay = 1e-3;
  double clip = 1.0;          // global gradient-norm clip
  size_t rows_per_block = 256;  // tokens per product: bounds the [rows, vocab] scratch (not saved:
                                // it changes no result beyond summation order)
  // Frequency-down-weighted training (off when empty): the loss of a token is multiplied by
  // target_weight[v], v = the model's final top-1 at that token (frequency_weights()). Held-out
  // evaluation stays unweighted.
  std::vector<float> target_weight;  // [V]
  double freq_beta = 0;              // the β the weights were made with (saved, checked on resume)
  // bf16 products (opt-in, inexact): the two unembedding products per token and translator
  // (logits and W_Uᵀ dlogits) take W_U in bf16 and round their activations to bf16, multiplied
  // with AVX512_BF16 (kernels/bf16dot.hpp, twice the f32 rate), as the reference recipe's
  // bfloat16 autocast does on GPUs. Ignored where the CPU lacks AVX512_BF16.
  bool bf16_products = false;
};

// w_v = (c_v + 1)^(−β) / Σ_u c_u (c_u + 1)^(−β) · Σ_u c_u: down-weights frequent tokens, scaled so
// that the mean weight over the corpus's tokens is 1 (the loss keeps its scale; lr unchanged).
// counts: [V] corpus counts with the model's tokenizer.
inline std::vector<float> frequency_weights(std::span<const int64_t> counts, double beta) {
  if (!(beta >= 0)) throw UsageError("", "freq_beta", "must be >= 0");
  double num = 0, den = 0;
  std::vector<float> w(counts.size());
  for (size_t v = 0; v < counts.size(); ++v) {
    if (counts[v] < 0) throw UsageError("", "counts", "negative count");
    const double x = std::pow(double(counts[v]) + 1.0, -beta);
    w[v] = float(x);
    num += double(counts[v]), den += double(counts[v]) * x;
  }
  if (den <= 0) throw UsageError("", "counts", "no tokens counted");
  for (auto& x : w) x = float(double(x) * num / den);
  return w;
}

// Hidden states and final distributions of a run of tokens (one or several sequences).
struct SequenceStates {
  size_t tokens = 0;
  std::vector<float> hidden;       // [L, tokens, H]: hidden_states[i], i < L
  std::vector<float> p;            // [tokens, V] softmax of the model's logits
  std::vector<double> neg_entropy; // [tokens] Σ_v p log p
  std::vector<double> p_sum;       // [tokens] Σ_v p (1 up to rounding)
  std::vector<int32_t> top1;       // [tokens] argmax of the model's logits
};

// Appends the states of `seq` (one forward pass) to `st`, whose hidden states are laid out for
// `total` tokens ([L, total, H]; `st.tokens` is where this sequence starts).
inline void append_sequence_states(const Model& m, std::span<const int32_t> seq, size_t total,
                                   SequenceStates& st) {
  const size_t L = m.n_layers(), H = m.hidden(), V = m.vocab(), T = seq.size(), t0 = st.tokens;
  if (t0 + T > total) throw UsageError("", "sequences", "more tokens than the batch was laid out for");
  std::vector<Site> sites;
  for (size_t i = 0; i < L; ++i) sites.push_back(hidden_state_site(i, L));
  SiteRecorder rec(sites, H);
  Session s(m, SessionOptions{int64_t(T), KvStrategy::Propagate});
  FullDepth full;
  auto lg = s.forward(seq, Phase::PP, full, rec, Logits::All);
  st.hidden.resize(L * total * H);
  st.p.resize(total * V);
  st.neg_entropy.resize(total);
  st.p_sum.resize(total);
  st.top1.resize(total);
  for (size_t i = 0; i < L; ++i) {
    auto rows = rec.rows(i, 0, T);
    std::copy(rows.begin(), rows.end(), st.hidden.begin() + long((i * total + t0) * H));
  }
#pragma omp parallel for schedule(static)
  for (long t = 0; t < long(T); ++t) {
    const float* r = lg.data() + size_t(t) * V;
    float* p = st.p.data() + (t0 + size_t(t)) * V;
    const double lse = logsumexp(std::span<const float>(r, V));
    double ne = 0, ps = 0;
    st.top1[t0 + size_t(t)] = int32_t(std::max_element(r, r + V) - r);
    for (size_t v = 0; v < V; ++v) {
      const float lp = float(double(r[v]) - lse);  // the f32 log-probability, as before
      p[v] = std::exp(lp);
      ne += double(p[v]) * lp, ps += p[v];
    }
    st.neg_entropy[t0 + size_t(t)] = ne;
    st.p_sum[t0 + size_t(t)] = ps;
  }
  st.tokens = t0 + T;
}

inline SequenceStates sequence_states(const Model& m, std::span<const int32_t> seq) {
  SequenceStates st;
  append_sequence_states(m, seq, seq.size(), st);
  return st;
}

// Loss and gradients of translator i of `lens` (the model's readout gives norm and W_U), for a
// block of tokens at a time.
class LensObjective {
 public:
  explicit LensObjective(const Model& m, bool bf16_products = false)
      : m_(&m), H_(m.hidden()), V_(m.vocab()), bf16_(bf16_products && kernels::kBf16Dot) {
    const auto& U = m.readout().unembed;
    // W_U [V, H] for the forward product and W_Uᵀ [H, V] for dn = W_Uᵀ dlogits (gemm multiplies
    // by a transposed W), both with W_U's exact values (exact gradients need the same matrix both
    // ways): widened to f32 panels once (kernels::PackedPanels), so no step widens or transposes
    // them again; or as bf16 copies for the bf16 products.
    std::vector<float> ut(H_ * V_);  // [H, V]
    for (size_t v = 0; v < V_; ++v)
      for (size_t c = 0; c < H_; ++c) ut[c * V_ + v] = U.at(v, c);
    if (bf16_) {
      u16_.resize(V_ * H_), ut16_.resize(H_ * V_);
      for (size_t k = 0; k < V_ * H_; ++k) ut16_[k] = f32_to_bf16(ut[k]);
      for (size_t v = 0; v < V_; ++v)
        for (size_t c = 0; c < H_; ++c) u16_[v * H_ + c] = ut16_[c * V_ + v];
      return;
    }
    u_ = kernels::PackedPanels(U);
    // The panels keep their own values; ut (freed here) is only named by ut_'s matrix() view.
    ut_ = kernels::PackedPanels(kernels::MatrixView{DType::F32, H_, V_, ut.data()});
  }
  bool bf16_products() const { return bf16_; }

  // Σ_t w_t KL(p_t ‖ lens_i(h_t)) over a block of n tokens: h [n, H], p [n, V] with neg_entropy
  // and p_sum [n] (SequenceStates), w [n] (null: 1). When gw/gb are given, adds the gradient of
  // (Σ_t w_t KL_t) / scale_tokens to gw [H, H] and gb [H].
  double run(const TunedLens& lens, size_t i, const float* h, const float* p,
             const double* neg_entropy, const double* p_sum, size_t n, double scale_tokens,
             float* gw, float* gb, const float* w = nullptr) {
    using kernels::MatrixView;
    const size_t H = H_, V = V_;
    const auto& norm = *m_->readout().norm;
    const bool grad = gw != nullptr;
    // The bf16 mode of gemm is a process-wide switch: on for these products only, so the model's
    // own forward passes (targets) keep their precision.
    struct Bf16Scope {
      bool on, prev = kernels::bf16_activations_requested();
      explicit Bf16Scope(bool o) : on(o) { if (on) kernels::set_bf16_activations(true); }
      ~Bf16Scope() { if (on) kernels::set_bf16_activations(prev); }
    } scope(bf16_);
    z_.resize(n * H), nrm_.resize(n * H), lg_.resize(n * V), kl_.resize(n);
    lens.translate(i, h, z_.data(), n, H);                                   // z = h + A h + b  [n, H]
    norm(z_.data(), nrm_.data(), n);                                         // norm(z)          [n, H]
    if (bf16_) kernels::gemm(MatrixView{DType::BF16, V, H, u16_.data()}, nrm_.data(), n, lg_.data());
    else kernels::gemm_packed(u_, nrm_.data(), n, lg_.data());             // logits   [n, V]
    const float inv = float(1.0 / scale_tokens);
#pragma omp parallel for schedule(static) if (n > 1)
    for (long t = 0; t < long(n); ++t) {  // KL row; logits become dlogits = (q − p) / scale
      const float wt = w ? w[t] : 1.f;
      const auto r = kernels::kl_row(lg_.data() + size_t(t) * V, p + size_t(t) * V, V, grad, inv * wt);
      kl_[size_t(t)] = (neg_entropy[t] - r.p_dot_logits + r.lse * p_sum[t]) * double(wt);
    }
    double total = 0;
    for (size_t t = 0; t < n; ++t) total += kl_[t];
    if (!grad) return total;
    dn_.resize(n * H), dz_.resize(n * H);
    if (bf16_) kernels::gemm(MatrixView{DType::BF16, H, V, ut16_.data()}, lg_.data(), n, dn_.data());
    else kernels::gemm_packed(ut_, lg_.data(), n, dn_.data());             // dn = W_Uᵀ dlogits [n, H]
#pragma omp parallel for schedule(static) if (n > 1)
    for (long t = 0; t < long(n); ++t) {  // RMSNorm backward: dz [n, H]
      const float* z = z_.data() + size_t(t) * H;
      const float* dn = dn_.data() + size_t(t) * H;
      double ms = 0, gdz = 0;
      for (size_t c = 0; c < H; ++c)
        ms += double(z[c]) * z[c], gdz += double(norm.weight[c]) * dn[c] * z[c];
      const double r = 1.0 / std::sqrt(ms / double(H) + double(norm.eps));
      const double k = r * r * r * gdz / double(H);
      float* dz = dz_.data() + size_t(t) * H;
      for (size_t c = 0; c < H; ++c) dz[c] = float(r * norm.weight[c] * dn[c] - k * z[c]);
    }
    // db += Σ_t dz_t; dA += Σ_t dz_t h_tᵀ = dzᵀ h as a product of the transposes:
    // gemm(W = hᵀ [H, n], X = dzᵀ [H, n]) gives Y[a][b] = Σ_t dz[t][a] h[t][b].
    dzt_.resize(H * n), ht_.resize(H * n), da_.resize(H * H);
    for (size_t t = 0; t < n; ++t)
      for (size_t c = 0; c < H; ++c) {
        gb[c] += dz_[t * H + c];
        dzt_[c * n + t] = dz_[t * H + c];
        ht_[c * n + t] = h[t * H + c];
      }
    kernels::gemm(MatrixView{DType::F32, H, n, ht_.data()}, dzt_.data(), H, da_.data());  // [H, H]
    for (size_t k = 0; k < H * H; ++k) gw[k] += da_[k];
    return total;
  }

 private:
  const Model* m_;
  size_t H_, V_;
  bool bf16_ = false;
  kernels::PackedPanels u_;           // W_U [V, H] as f32 panels (f32 products)
  kernels::PackedPanels ut_;          // W_Uᵀ [H, V] as f32 panels
  std::vector<uint16_t> u16_, ut16_;  // [V, H], [H, V] bf16 copies (bf16 products)
  std::vector<float> z_, nrm_, dn_, dz_;  // [n, H]
  std::vector<float> lg_;                 // [n, V] logits, then dlogits
  std::vector<double> kl_;                // [n]
  std::vector<float> dzt_, ht_;           // [H, n]
  std::vector<float> da_;                 // [H, H]
};

// SGD-Nesterov trainer with the reference hyperparameters; state saved beside the lens.
class LensTrainer {
 public:
  LensTrainer(const Model& m, TunedLens& lens, TrainOptions opts)
      : m_(&m), lens_(&lens), opts_(opts), obj_(m, opts.bf16_products) {
    lens.check_fits(m);
    if (opts.steps <= 0) throw UsageError("", "steps", "must be positive");
    if (opts.seqs_per_step == 0) throw UsageError("", "seqs_per_step", "must be positive");
    mw_.assign(lens.weights().size(), 0.f);
    mb_.assign(lens.biases().size(), 0.f);
    gw_.assign(lens.weights().size(), 0.f);
    gb_.assign(lens.biases().size(), 0.f);
  }

  int step() const { return step_; }
  const TrainOptions& options() const { return opts_; }
  // lr of the current step (linear decay to 0 at `steps`).
  double lr() const {
    return opts_.lr_scale * (1 - opts_.momentum) *
           std::max(0.0, double(opts_.steps - step_) / double(opts_.steps));
  }

  // Gradients of Σ_i loss_i over `seqs` (mean over their tokens) into grad_w()/grad_b();
  // returns the per-layer mean KL.
  std::vector<double> gradients(const std::vector<std::span<const int32_t>>& seqs) {
    std::fill(gw_.begin(), gw_.end(), 0.f);
    std::fill(gb_.begin(), gb_.end(), 0.f);
    return accumulate(seqs, true);
  }
  std::vector<float>& grad_w() { return gw_; }  // [L, H, H]
  std::vector<float>& grad_b() { return gb_; }  // [L, H]

  // One optimizer step on `seqs`; returns the per-layer mean KL before the update.
  std::vector<double> train_step(const std::vector<std::span<const int32_t>>& seqs) {
    auto loss = gradients(seqs);
    // Global-norm clip over every translator (torch.nn.utils.clip_grad_norm_).
    double sq = 0;
    for (float g : gw_) sq += double(g) * g;
    for (float g : gb_) sq += double(g) * g;
    const double norm = std::sqrt(sq), coef = opts_.clip / (norm + 1e-6);
    const float c = coef < 1.0 ? float(coef) : 1.f;
    const float rate = float(lr()), mu = float(opts_.momentum), wd = float(opts_.weight_decay);
    auto update = [&](std::vector<float>& p, std::vector<float>& g, std::vector<float>& buf) {
      for (size_t k = 0; k < p.size(); ++k) {  // torch.optim.SGD(nesterov=True, dampening=0)
        const float d = g[k] * c + wd * p[k];
        buf[k] = mu * buf[k] + d;  // zero-initialised: the first step stores d, as torch does
        p[k] -= rate * (d + mu * buf[k]);
      }
    };
    update(lens_->weights(), gw_, mw_);
    update(lens_->biases(), gb_, mb_);
    ++step_;
    return loss;
  }

  // Per-layer mean KL over `seqs` (no update).
  std::vector<double> evaluate(const std::vector<std::span<const int32_t>>& seqs) {
    return accumulate(seqs, false);
  }

  // Checkpoint: the lens (config.json + params.safetensors, the import layout) plus
  // optimizer.safetensors (momentum buffers) and train_state.json (step, options), replaced as
  // one set (io/staged_files.hpp): a run killed at any moment resumes from a consistent step.
  void save(const std::filesystem::path& dir, const std::string& base_model = {}) const {
    io::commit_files(dir, [&](const std::filesystem::path& staging) { write_checkpoint(staging, base_model); });
  }

  // Restores lens, momentum and step from a checkpoint written by save(); the options must match
  // those the run started with (else the schedule would silently change).
  void resume(const std::filesystem::path& dir) {
    io::recover_files(dir);  // finish a save a kill interrupted after its commit point
    *lens_ = TunedLens::load(dir);
    lens_->check_fits(*m_, dir.string());
    const auto sp = dir / "train_state.json";
    const io::Json st = io::read_json_file(sp);
    auto num = [&](const char* k) {
      if (!st.contains(k) || !st[k].is_number())
        throw FormatError(sp.string(), k, "missing or not a number");
      return st[k].get<double>();
    };
    const int step = int(num("step"));
    if (step < 0 || step > opts_.steps) throw FormatError(sp.string(), "step", "outside [0, steps]");
    if (int(num("steps")) != opts_.steps || size_t(num("seqs_per_step")) != opts_.seqs_per_step)
      throw UsageError(sp.string(), "steps/seqs_per_step",
                       "differ from this run's options; resume with the same options");
    const double beta = st.contains("freq_beta") ? num("freq_beta") : 0.0;  // older checkpoints: unweighted
    if (beta != opts_.freq_beta)
      throw UsageError(sp.string(), "freq_beta", "differs from this run's frequency weighting");
    const auto store = io::load_safetensors(dir / "optimizer.safetensors");
    const size_t L = lens_->n_layers(), H = lens_->hidden();
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      auto w = io::to_f32(store.get(k + ".weight.momentum", {int64_t(H), int64_t(H)}));
      auto b = io::to_f32(store.get(k + ".bias.momentum", {int64_t(H)}));
      std::copy(w.begin(), w.end(), mw_.begin() + long(i * H * H));
      std::copy(b.begin(), b.end(), mb_.begin() + long(i * H));
    }
    step_ = step;
  }

 private:
  void write_checkpoint(const std::filesystem::path& dir, const std::string& base_model) const {
    lens_->save(dir, base_model);
    const size_t L = lens_->n_layers(), H = lens_->hidden();
    std::vector<io::TensorView> ts;
    for (size_t i = 0; i < L; ++i) {
      const std::string k = std::to_string(i);
      ts.push_back({k + ".weight.momentum", DType::F32, {int64_t(H), int64_t(H)},
                    reinterpret_cast<const std::byte*>(mw_.data() + i * H * H),
                    H * H * sizeof(float), {}});
      ts.push_back({k + ".bias.momentum", DType::F32, {int64_t(H)},
                    reinterpret_cast<const std::byte*>(mb_.data() + i * H), H * sizeof(float), {}});
    }
    io::save_safetensors(dir / "optimizer.safetensors", ts);
    io::Json st = {{"step", step_},
                   {"steps", opts_.steps},
                   {"seqs_per_step", opts_.seqs_per_step},
                   {"lr_scale", opts_.lr_scale},
                   {"momentum", opts_.momentum},
                   {"weight_decay", opts_.weight_decay},
                   {"clip", opts_.clip}};
    if (!opts_.target_weight.empty()) st["freq_beta"] = opts_.freq_beta;
    const auto sp = dir / "train_state.json";
    std::ofstream o(sp);
    if (!o) throw IoError(sp.string(), "", "cannot open for writing");
    o << st.dump(2) << "\n";
    o.flush();
    if (!o) throw IoError(sp.string(), "", "write failed (disk full?)");
  }

  // Per-layer mean KL over `seqs`; with `grad`, adds the gradients of their sum into gw_/gb_.
  // Sequences are taken in micro-batches of about rows_per_block tokens (one forward pass each),
  // whose states are read out layer by layer in blocks of at most rows_per_block tokens.
  std::vector<double> accumulate(const std::vector<std::span<const int32_t>>& seqs, bool grad) {
    const size_t L = lens_->n_layers(), H = m_->hidden(), V = m_->vocab();
    const size_t rows = std::max<size_t>(opts_.rows_per_block, 1);
    size_t total = 0;
    for (auto& s : seqs) total += s.size();
    std::vector<double> loss(L, 0.0);
    for (size_t s0 = 0; s0 < seqs.size();) {
      size_t s1 = s0, n = 0;
      while (s1 < seqs.size() && (n == 0 || n + seqs[s1].size() <= rows)) n += seqs[s1++].size();
      SequenceStates st;
      for (size_t k = s0; k < s1; ++k) append_sequence_states(*m_, seqs[k], n, st);
      const bool weighted = grad && !opts_.target_weight.empty();
      if (weighted) {
        if (opts_.target_weight.size() != V)
          throw UsageError("", "target_weight", "expected one weight per vocabulary entry");
        w_.resize(n);
        for (size_t t = 0; t < n; ++t) w_[t] = opts_.target_weight[size_t(st.top1[t])];
      }
      for (size_t i = 0; i < L; ++i)
        for (size_t t0 = 0; t0 < n; t0 += rows) {
          const size_t b = std::min(rows, n - t0);
          loss[i] += obj_.run(*lens_, i, st.hidden.data() + (i * n + t0) * H, st.p.data() + t0 * V,
                              st.neg_entropy.data() + t0, st.p_sum.data() + t0, b,
                              grad ? double(total) : 1.0, grad ? gw_.data() + i * H * H : nullptr,
                              grad ? gb_.data() + i * H : nullptr, weighted ? w_.data() + t0 : nullptr);
        }
      s0 = s1;
    }
    for (auto& l : loss) l /= double(std::max<size_t>(total, 1));
    return loss;
  }

  const Model* m_;
  TunedLens* lens_;
  TrainOptions opts_;
  LensObjective obj_;
  std::vector<float> mw_, mb_;  // momentum buffers [L, H, H], [L, H]
  std::vector<float> gw_, gb_;  // gradients
  std::vector<float> w_;        // [tokens of a micro-batch] loss weights (frequency-weighted runs)
  int step_ = 0;
};

}  // namespace fathom::lens
